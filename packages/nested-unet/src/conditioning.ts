import * as tf from '@tensorflow/tfjs-core';
import type { Conditioning, ParamSpec } from '@matryoshka-ts/core';
import type { TextContext } from './attention.js';
import type { ResolvedConfig } from './config.js';
import { type Params, linear, linearSpecs } from '@matryoshka-ts/layers';
import { textHeadLayer, textHeadLayerSpecs } from './text-head.js';

/**
 * Conditioning shared by all levels. Its parameters live in the innermost UNet (as in the
 * official code), so a low-resolution checkpoint carries them into a nested model.
 */
export interface SharedConditioning {
  /**
   * Added to every level's time embedding: Linear(pooled text) + label embedding, [B, T]; undefined when
   * unconditional.
   */
  embedding?: tf.Tensor2D;
  /** Tokens for cross-attention. */
  text?: TextContext;
}

/** What the model is conditioned on. */
/** The conditioning inputs of one call (the shared vocabulary's `Conditioning`). */
export type ConditioningInput = Conditioning;

/** Parameters of text and label conditioning, under the innermost level's prefix. */
export function conditioningSpecs(config: ResolvedConfig): ParamSpec[] {
  const innermost = config.levels[config.levels.length - 1];
  const p = innermost.prefix;
  const T = innermost.timeEmbedDim;
  const specs: ParamSpec[] = [];
  if (config.text) {
    const width = config.textWidth;
    specs.push(...linearSpecs(`${p}cond_emb`, width, T, { bias: false }));
  }
  if (config.labels) {
    specs.push({
      name: `${p}label_emb.weight`,
      shape: [config.labels.numClasses + 1, T],
      layout: 'table',
      init: { kind: 'normal', std: 0.02 },
    });
  }
  return specs;
}

/** Parameters of the text projection and head (registered after the UNet body, as the official code does). */
export function textProjectionSpecs(config: ResolvedConfig): ParamSpec[] {
  if (!config.text) return [];
  const p = config.levels[config.levels.length - 1].prefix;
  const specs: ParamSpec[] = [];
  if (config.text.projDim > 0) specs.push(...linearSpecs(`${p}lm_proj`, config.text.featureDim, config.text.projDim));
  for (let i = 0; i < config.text.headLayers; i++)
    specs.push(...textHeadLayerSpecs(`${p}lm_head.${i}`, config.textWidth));
  return specs;
}

export type DebugSink = (name: string, tensor: tf.Tensor) => void;

/**
 * Text: tokens → Linear(D → P) → text-head layers; pooled = Σ mask·token / Σ mask (a plain mean
 * when the mask is not used and a head exists, as in the official code); Linear(P → T, no bias)
 * of the pooled vector. Labels: a learned row per class. Both are summed into one embedding.
 */
export function sharedConditioning(
  P: Params,
  config: ResolvedConfig,
  input: ConditioningInput,
  debug?: DebugSink,
): SharedConditioning {
  const p = config.levels[config.levels.length - 1].prefix;
  const result: SharedConditioning = {};
  if (config.text) {
    if (!input.tokens) throw new Error('this model is text-conditioned: pass text tokens [B, L, D] (and a mask)');
    const text = config.text;
    if (input.tokens.shape[2] !== text.featureDim) {
      throw new Error(`text tokens have width ${input.tokens.shape[2]}, the model expects ${text.featureDim}`);
    }
    let tokens = input.tokens;
    if (text.projDim > 0) tokens = linear(P, `${p}lm_proj`, tokens) as tf.Tensor3D;
    debug?.('lm_proj', tokens);
    const mask = input.mask ? tf.cast(input.mask, 'float32') : undefined;
    const headMask = text.maskedCrossAttention ? mask : undefined;
    for (let i = 0; i < text.headLayers; i++)
      tokens = textHeadLayer(P, `${p}lm_head.${i}`, tokens, config.attentionHeads, headMask);
    let pooled: tf.Tensor2D;
    if (!mask || (!text.maskedCrossAttention && text.headLayers > 0)) pooled = tf.mean(tokens, 1);
    else pooled = tf.div(tf.sum(tf.mul(tokens, tf.expandDims(mask, 2)), 1), tf.sum(mask, 1, true));
    debug?.('pooled_text', pooled);
    const emb = linear(P, `${p}cond_emb`, pooled, false) as tf.Tensor2D;
    debug?.('cond_emb', emb);
    result.embedding = emb;
    result.text = { tokens, mask: text.maskedCrossAttention ? mask : undefined };
  }
  if (config.labels) {
    if (!input.labels)
      throw new Error(
        'this model is class-conditional: pass labels [B] (use the null label for unconditional samples)',
      );
    const table = P(`${p}label_emb.weight`);
    // one-hot · table instead of gather: its gradient is a matMul, which every backend has.
    const rows = tf.matMul(
      tf.oneHot(tf.cast(input.labels, 'int32'), config.labels.numClasses + 1),
      table,
    ) as tf.Tensor2D;
    result.embedding = result.embedding ? (tf.add(result.embedding, rows) as tf.Tensor2D) : rows;
  }
  return result;
}
