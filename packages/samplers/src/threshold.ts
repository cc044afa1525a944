import * as tf from '@tensorflow/tfjs-core';

/**
 * Dynamic thresholding (Saharia et al., Imagen): per sample, q = the `quantile` of |x̂0| over all
 * C·H·W values, s = clamp(q, 1, max), x̂0 ← clamp(x̂0, −s, s)/s.
 */
export interface DynamicThreshold {
  /** Which quantile of |x̂0| sets the per-sample scale, in [0, 1]. */
  quantile: number;
  /** Upper bound on the scale s (≥ 1). */
  max: number;
}

/** What is done to x̂0 before a step: nothing, a clamp to [−1, 1], or dynamic thresholding. */
export type Threshold = 'none' | 'clip' | DynamicThreshold;

/** The official names (`ThresholdType` NONE, CLIP, DYNAMIC, DYNAMIC_IF), lower-case as in the fixtures. */
export type ThresholdName = 'none' | 'clip' | 'dynamic' | 'dynamic_if';

/** Imagen's dynamic thresholding: the 99.5th percentile of |x̂0|, capped at 100 (official `DYNAMIC`). */
export const DYNAMIC_IMAGEN: DynamicThreshold = Object.freeze({ quantile: 0.995, max: 100 });

/** DeepFloyd IF's dynamic thresholding: the 95th percentile of |x̂0|, capped at 1.5 (official `DYNAMIC_IF`). */
export const DYNAMIC_DEEPFLOYD: DynamicThreshold = Object.freeze({ quantile: 0.95, max: 1.5 });

/** The threshold an official name stands for (`none`, `clip`, `dynamic`, `dynamic_if`; case-insensitive). */
export function thresholdByName(name: string): Threshold {
  switch (name.toLowerCase()) {
    case 'none':
      return 'none';
    case 'clip':
      return 'clip';
    case 'dynamic':
      return DYNAMIC_IMAGEN;
    case 'dynamic_if':
      return DYNAMIC_DEEPFLOYD;
    default:
      throw new Error(`Unknown threshold '${name}': expected none, clip, dynamic or dynamic_if`);
  }
}

/**
 * The q-quantile of each sample's values (all dimensions after the first) → [B]. numpy's and
 * torch's default `linear` method: with the n values sorted, the virtual index q·(n − 1) is split
 * into lo = ⌊q·(n − 1)⌋ and w = q·(n − 1) − lo, and the result is v[lo] + w·(v[lo+1] − v[lo])
 * (for w ≥ 0.5 written v[lo+1] − (1 − w)·(v[lo+1] − v[lo]), numpy's `_lerp` and torch's `lerp`).
 * The order statistics are selected exactly (`topk`); the interpolation is one float32 lerp.
 */
export function quantilePerSample(x: tf.Tensor, q: number): tf.Tensor1D {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile must lie in [0, 1], got ${q}`);
  const batch = x.shape[0];
  if (batch === undefined || x.size === 0)
    throw new Error(`quantilePerSample needs a non-empty batch, got shape [${x.shape}]`);
  const n = x.size / batch;
  const index = q * (n - 1);
  const lo = Math.floor(index);
  const w = index - lo;
  return tf.tidy(() => {
    // The k = n − lo largest values, descending: sorted[lo] is the last, sorted[lo + 1] the one before.
    const k = n - lo;
    const { values, indices } = tf.topk(tf.reshape(x, [batch, n]), k, true);
    indices.dispose();
    const below = tf.reshape(tf.slice(values, [0, k - 1], [batch, 1]), [batch]);
    if (w === 0 || k === 1) return below as tf.Tensor1D;
    const above = tf.reshape(tf.slice(values, [0, k - 2], [batch, 1]), [batch]);
    const diff = tf.sub(above, below);
    return (w < 0.5 ? tf.add(below, tf.mul(w, diff)) : tf.sub(above, tf.mul(1 - w, diff))) as tf.Tensor1D;
  });
}

/**
 * Dynamic thresholding of x̂0 [B, H, W, C]: s = clamp(quantile(|x̂0|), 1, max) per sample,
 * x̂0 ← clamp(x̂0, −s, s)/s.
 */
export function dynamicThreshold(x0: tf.Tensor4D, { quantile, max }: DynamicThreshold): tf.Tensor4D {
  if (!(max >= 1)) throw new RangeError(`dynamic threshold max must be ≥ 1, got ${max}`);
  return tf.tidy(() => {
    const q = quantilePerSample(tf.abs(x0), quantile);
    const s = tf.reshape(tf.clipByValue(q, 1, max), [x0.shape[0], 1, 1, 1]);
    // clamp(x̂0, −s, s)/s written as clamp(x̂0/s, −1, 1): the same numbers bit for bit (x/s
    // rounds to ≥ 1 exactly when x ≥ s), without the wasm backend's broadcast Maximum/Minimum,
    // which took ~19 ms each at 64 px against 0.1 ms for the broadcast Div.
    return tf.clipByValue(tf.div(x0, s), -1, 1) as tf.Tensor4D;
  });
}

/** x̂0 [B, H, W, C] after thresholding (a new tensor; `none` returns a copy). */
export function applyThreshold(x0: tf.Tensor4D, threshold: Threshold): tf.Tensor4D {
  if (threshold === 'none') return tf.clone(x0);
  if (threshold === 'clip') return tf.clipByValue(x0, -1, 1);
  return dynamicThreshold(x0, threshold);
}
