import * as tf from '@tensorflow/tfjs-core';
import type { ParamSpec } from '@matryoshka-ts/core';
import { type Params, linear, linearSpecs, silu } from '@matryoshka-ts/layers';

/**
 * Sinusoid frequencies for a time embedding of width T: H = T/8 frequencies
 * f_k = exp(−ln(10000)·k/H), computed in float32 as the official code does.
 */
export function timeFrequencies(timeEmbedDim: number): Float32Array {
  const half = Math.floor(timeEmbedDim / 8);
  const step = Math.fround(Math.log(10000) / half);
  const out = new Float32Array(half);
  for (let k = 0; k < half; k++) out[k] = Math.exp(Math.fround(k * -step));
  return out;
}

/**
 * [sin(t·f), cos(t·f)] (sin half first) for per-sample values t [B]; width T/4, zero-padded when
 * T/4 is odd. t is the integer step index, not divided by the number of steps.
 */
export function sinusoid(t: tf.Tensor1D, timeEmbedDim: number): tf.Tensor2D {
  const f = timeFrequencies(timeEmbedDim);
  const args = tf.mul(tf.reshape(t, [-1, 1]), tf.tensor2d(f, [1, f.length]));
  let emb = tf.concat([tf.sin(args), tf.cos(args)], 1) as tf.Tensor2D;
  const width = Math.floor(timeEmbedDim / 4);
  if (width > emb.shape[1])
    emb = tf.pad(emb, [
      [0, 0],
      [0, width - emb.shape[1]],
    ]);
  return emb;
}

/** Parameters of a sinusoid → Linear(T/4 → T) → SiLU → Linear(T → T) MLP. */
export function embeddingMlpSpecs(
  first: string,
  second: string,
  timeEmbedDim: number,
  zeroSecond = false,
): ParamSpec[] {
  return [
    ...linearSpecs(first, Math.floor(timeEmbedDim / 4), timeEmbedDim),
    ...linearSpecs(second, timeEmbedDim, timeEmbedDim, { zero: zeroSecond }),
  ];
}

/** The MLP of a time-like embedding: Linear → SiLU → Linear on the sinusoid of `t`. */
export function embeddingMlp(
  P: Params,
  first: string,
  second: string,
  t: tf.Tensor1D,
  timeEmbedDim: number,
): tf.Tensor2D {
  return linear(P, second, silu(linear(P, first, sinusoid(t, timeEmbedDim)))) as tf.Tensor2D;
}

/** Parameters of a level's time MLP (`temb_layer1`, `temb_layer2`). */
export function timeEmbeddingSpecs(prefix: string, timeEmbedDim: number): ParamSpec[] {
  return embeddingMlpSpecs(`${prefix}temb_layer1`, `${prefix}temb_layer2`, timeEmbedDim);
}

/** A level's time embedding before conditioning terms are added: MLP(sinusoid(t)), [B, T]. */
export function timeEmbedding(P: Params, prefix: string, times: tf.Tensor1D, timeEmbedDim: number): tf.Tensor2D {
  return embeddingMlp(P, `${prefix}temb_layer1`, `${prefix}temb_layer2`, times, timeEmbedDim);
}

/** Parameters of a super-resolution stage's augmentation-step MLP (`aug_layer1`, `aug_layer2`). */
export function augmentationEmbeddingSpecs(prefix: string, timeEmbedDim: number): ParamSpec[] {
  return embeddingMlpSpecs(`${prefix}aug_layer1`, `${prefix}aug_layer2`, timeEmbedDim);
}

/**
 * The noise-augmentation step embedded like time (Saharia et al. 2022): MLP(sinusoid(t_aug)),
 * added to the level's time embedding.
 */
export function augmentationEmbedding(
  P: Params,
  prefix: string,
  augTimes: tf.Tensor1D,
  timeEmbedDim: number,
): tf.Tensor2D {
  return embeddingMlp(P, `${prefix}aug_layer1`, `${prefix}aug_layer2`, augTimes, timeEmbedDim);
}

/**
 * Parameters of micro-conditioning (`cond_layers.<name>.{0,1}`): one MLP per named value, its
 * second layer zero-initialised so a new term starts as a no-op.
 */
export function microConditioningSpecs(prefix: string, names: string[], timeEmbedDim: number): ParamSpec[] {
  return names.flatMap((name) =>
    embeddingMlpSpecs(`${prefix}cond_layers.${name}.0`, `${prefix}cond_layers.${name}.1`, timeEmbedDim, true),
  );
}

/**
 * Micro-conditioning term added to a level's time embedding: Σ over names of MLP(sinusoid(v)).
 * `scale` values are clamped to at most their default; other values are multiplied by 1000, as in
 * the official code. Missing values take the default for every sample.
 */
export function microConditioning(
  P: Params,
  prefix: string,
  defaults: Record<string, number>,
  values: Record<string, tf.Tensor1D | number[]> | undefined,
  batch: number,
  timeEmbedDim: number,
): tf.Tensor2D | undefined {
  let sum: tf.Tensor2D | undefined;
  for (const [name, fallback] of Object.entries(defaults)) {
    const given = values?.[name];
    let v: tf.Tensor1D =
      given === undefined ? tf.fill([batch], fallback) : Array.isArray(given) ? tf.tensor1d(given) : given;
    v = name === 'scale' ? tf.mul(tf.minimum(tf.div(v, fallback), 1), fallback) : tf.mul(v, 1000);
    const term = embeddingMlp(P, `${prefix}cond_layers.${name}.0`, `${prefix}cond_layers.${name}.1`, v, timeEmbedDim);
    sum = sum ? (tf.add(sum, term) as tf.Tensor2D) : term;
  }
  return sum;
}
