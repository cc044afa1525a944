import * as tf from '@tensorflow/tfjs-core';
import type { ParamSpec } from '@matryoshka-ts/core';
import { attentionLayer, attentionLayerSpecs, type TextContext } from './attention.js';
import type { ResolvedConfig, ResolvedLevel } from './config.js';
import { conditioningSpecs, textProjectionSpecs } from './conditioning.js';
import { type Params, conv2d, convSpecs, groupNorm, upsampleNearest2x } from '@matryoshka-ts/layers';
import { residualBlock, residualBlockSpecs } from './residual-block.js';
import { augmentationEmbeddingSpecs, microConditioningSpecs, timeEmbeddingSpecs } from './time-embedding.js';
import {
  temporalAttentionBlock,
  temporalAttentionSpecs,
  temporalConvSpecs,
  temporalDownsample,
  temporalUpsample,
} from './temporal.js';
import type { DebugSink } from './conditioning.js';

/**
 * The parameters of level `index` and, recursively, of every level inside it, in the official
 * code's registration order. The inner level's keys are its standalone keys under `inner_unet.`,
 * which is what lets a low-resolution checkpoint initialise the inside of a larger model.
 */
export function levelSpecs(config: ResolvedConfig, index: number): ParamSpec[] {
  const level = config.levels[index];
  const p = level.prefix;
  const T = level.timeEmbedDim;
  const ch = level.channels;
  const textWidth = config.textWidth;
  const specs: ParamSpec[] = [...timeEmbeddingSpecs(p, T)];
  if (level.isInnermost) specs.push(...conditioningSpecs(config));
  specs.push(...microConditioningSpecs(p, Object.keys(level.microConditioning), T));
  if (config.lowResCondition) specs.push(...augmentationEmbeddingSpecs(p, T));
  // A super-resolution stage's level 0 also sees the upsampled low-resolution image.
  const inputChannels = config.imageChannels * (index === 0 && config.lowResCondition ? 2 : 1);
  specs.push(...convSpecs(`${p}conv_in`, 3, inputChannels, ch[0]));

  let c = ch[0];
  const skips = [c];
  const attention = (name: string, width: number) => attentionLayerSpecs(name, width, textWidth, level.attentionFfn);
  const temporal = level.kind === 'temporal';
  // A temporal level resamples along time (Conv1d), every other level in space (3×3 conv).
  const resample = (name: string, width: number) =>
    temporal ? temporalConvSpecs(name, width) : convSpecs(name, 3, width, width);
  const temporalAttention = (block: string, i: number, blocks: number, width: number) => {
    for (let n = 0; n < blocks * level.temporalAttentionLayers[i]; n++)
      specs.push(...temporalAttentionSpecs(`${block}.t_attn.${n}`, width, level.rotaryPositions));
  };
  ch.forEach((width, i) => {
    for (let j = 0; j < level.resBlocks[i]; j++) {
      specs.push(...residualBlockSpecs(`${p}down_blocks.${i}.resnets.${j}`, c, width, T));
      skips.push(width);
      c = width;
    }
    const L = level.attentionLayers[i];
    for (let n = 0; n < level.resBlocks[i] * L; n++) specs.push(...attention(`${p}down_blocks.${i}.attn.${n}`, width));
    temporalAttention(`${p}down_blocks.${i}`, i, level.resBlocks[i], width);
    if (i !== ch.length - 1) {
      specs.push(...resample(`${p}down_blocks.${i}.resample`, width));
      skips.push(width);
    }
  });
  if (level.midBlock) {
    specs.push(...residualBlockSpecs(`${p}mid_blocks.0.resnets.0`, c, c, T));
    specs.push(...attention(`${p}mid_blocks.0.attn.0`, c));
    specs.push(...residualBlockSpecs(`${p}mid_blocks.1.resnets.0`, c, c, T));
  }
  [...ch.keys()].reverse().forEach((i, u) => {
    for (let j = 0; j <= level.resBlocks[i]; j++) {
      const cin = c + skips.pop()!;
      specs.push(...residualBlockSpecs(`${p}up_blocks.${u}.resnets.${j}`, cin, ch[i], T));
      c = ch[i];
    }
    const L = level.attentionLayers[i];
    for (let n = 0; n < (level.resBlocks[i] + 1) * L; n++)
      specs.push(...attention(`${p}up_blocks.${u}.attn.${n}`, ch[i]));
    temporalAttention(`${p}up_blocks.${u}`, i, level.resBlocks[i] + 1, ch[i]);
    if (i !== 0) specs.push(...resample(`${p}up_blocks.${u}.resample`, ch[i]));
  });
  specs.push(
    { name: `${p}norm_out.weight`, shape: [c], layout: 'vector', init: { kind: 'ones' } },
    { name: `${p}norm_out.bias`, shape: [c], layout: 'vector', init: { kind: 'zeros' } },
    ...convSpecs(`${p}conv_out`, 3, c, config.imageChannels, true),
  );
  if (level.isInnermost) specs.push(...textProjectionSpecs(config));
  else {
    const inner = config.levels[index + 1];
    specs.push(...levelSpecs(config, index + 1));
    if (level.innerInput) specs.push(...convSpecs(`${p}in_adapter`, 3, ch[ch.length - 1], inner.channels[0], true));
    specs.push(...convSpecs(`${p}out_adapter`, 3, inner.channels[0], ch[ch.length - 1], true));
  }
  return specs;
}

/** Everything one level's body needs besides its input. */
export interface LevelContext {
  P: Params;
  config: ResolvedConfig;
  level: ResolvedLevel;
  /**
   * SiLU of the level's full time embedding (time MLP + conditioning + micro terms), sliced to its
   * batch: every residual block reads it through its own linear layer, so it is computed once.
   */
  tembAct: tf.Tensor2D;
  text?: TextContext;
  training: boolean;
  /** Receives named intermediates, suffixed with `.level<index>` (see `ForwardOptions.debug`). */
  debug?: DebugSink;
}

/**
 * conv_in, after optional per-row std normalisation (unbiased, over C·H·W); `condition` (a
 * super-resolution stage's upsampled low-resolution image) is concatenated along channels.
 */
export function inputLayer(
  P: Params,
  level: ResolvedLevel,
  x: tf.Tensor4D,
  condition?: tf.Tensor4D,
  debug?: DebugSink,
): tf.Tensor4D {
  let input = x;
  if (level.inputStdNormalisation) {
    // Per row: per frame for a clip, as the official code splits a clip into frames first.
    const n = x.shape[1] * x.shape[2] * x.shape[3];
    const { variance } = tf.moments(x, [1, 2, 3], true);
    input = tf.div(x, tf.sqrt(tf.mul(variance, n / (n - 1))));
  }
  if (level.frames > 1) debug?.(`frames_in.level${level.index}`, input);
  if (condition) input = tf.concat([input, condition], 3);
  return conv2d(P, `${level.prefix}conv_in`, input);
}

function stageAttention(ctx: LevelContext, name: string, x: tf.Tensor4D): tf.Tensor4D {
  return attentionLayer(ctx.P, name, x, ctx.config.attentionHeads, ctx.text, ctx.level.attentionFfn);
}

/** Down path: residual blocks (+ attention) per stage, stride-2 conv between stages; returns the skips. */
export function downPath(ctx: LevelContext, x: tf.Tensor4D): { h: tf.Tensor4D; skips: tf.Tensor4D[] } {
  const { P, level, tembAct } = ctx;
  const p = level.prefix;
  const opts = { groups: level.groups, dropout: level.dropout, training: ctx.training };
  let h = x;
  const skips = [h];
  level.channels.forEach((_, i) => {
    const L = level.attentionLayers[i];
    for (let j = 0; j < level.resBlocks[i]; j++) {
      h = residualBlock(P, `${p}down_blocks.${i}.resnets.${j}`, h, tembAct, opts);
      for (let l = 0; l < L; l++) h = stageAttention(ctx, `${p}down_blocks.${i}.attn.${j * L + l}`, h);
      h = stageTemporalAttention(ctx, `down_blocks.${i}`, i, j, h, `down${i}`);
      skips.push(h);
    }
    if (i !== level.channels.length - 1) {
      const name = `${p}down_blocks.${i}.resample`;
      if (level.kind === 'temporal') h = temporalDownsample(P, name, h, level.stageFrames[i]);
      else h = conv2d(P, name, h, i === 0 && !level.firstDownsample ? 1 : 2);
      skips.push(h);
    }
    ctx.debug?.(`down${i}.level${level.index}`, h);
  });
  return { h, skips };
}

/** The temporal-attention blocks after residual block `j` of stage `i` (none outside temporal levels). */
function stageTemporalAttention(
  ctx: LevelContext,
  block: string,
  i: number,
  j: number,
  x: tf.Tensor4D,
  debugName: string,
): tf.Tensor4D {
  const { level } = ctx;
  const L = level.temporalAttentionLayers[i];
  let h = x;
  for (let l = 0; l < L; l++) {
    const n = j * L + l;
    h = temporalAttentionBlock(
      ctx.P,
      `${level.prefix}${block}.t_attn.${n}`,
      h,
      level.stageFrames[i],
      level.rotaryPositions,
    );
    ctx.debug?.(`t_attn.${debugName}.${n}.level${level.index}`, h);
  }
  return h;
}

/** Mid block of the innermost level: residual block, one attention layer, residual block. */
export function midBlock(ctx: LevelContext, x: tf.Tensor4D): tf.Tensor4D {
  const { P, level, tembAct } = ctx;
  const p = level.prefix;
  const opts = { groups: level.groups, dropout: level.dropout, training: ctx.training };
  let h = residualBlock(P, `${p}mid_blocks.0.resnets.0`, x, tembAct, opts);
  h = stageAttention(ctx, `${p}mid_blocks.0.attn.0`, h);
  return residualBlock(P, `${p}mid_blocks.1.resnets.0`, h, tembAct, opts);
}

/**
 * Up path: per stage (deepest first) N+1 residual blocks on concat(h, most recent skip), then ×2 nearest + 3×3
 * conv.
 */
export function upPath(ctx: LevelContext, x: tf.Tensor4D, skips: tf.Tensor4D[]): tf.Tensor4D {
  const { P, level, tembAct } = ctx;
  const p = level.prefix;
  const opts = { groups: level.groups, dropout: level.dropout, training: ctx.training };
  const pending = [...skips];
  let h = x;
  [...level.channels.keys()].reverse().forEach((i, u) => {
    const L = level.attentionLayers[i];
    for (let j = 0; j <= level.resBlocks[i]; j++) {
      h = residualBlock(P, `${p}up_blocks.${u}.resnets.${j}`, tf.concat([h, pending.pop()!], 3), tembAct, opts);
      for (let l = 0; l < L; l++) h = stageAttention(ctx, `${p}up_blocks.${u}.attn.${j * L + l}`, h);
      h = stageTemporalAttention(ctx, `up_blocks.${u}`, i, j, h, `up${u}`);
    }
    if (i !== 0) {
      const name = `${p}up_blocks.${u}.resample`;
      if (level.kind === 'temporal') h = temporalUpsample(P, name, h, level.stageFrames[i]);
      else {
        // The stage whose downsampling was skipped (firstDownsample false) comes back without upsampling.
        const up = i === 1 && !level.firstDownsample ? h : upsampleNearest2x(h);
        h = conv2d(P, name, up);
      }
    }
    ctx.debug?.(`up${u}.level${level.index}`, h);
  });
  return h;
}

/** Output head: GroupNorm → SiLU → 3×3 conv to image channels. */
export function outputLayer(P: Params, level: ResolvedLevel, h: tf.Tensor4D): tf.Tensor4D {
  return conv2d(P, `${level.prefix}conv_out`, groupNorm(P, `${level.prefix}norm_out`, h, level.groups, { silu: true }));
}
