import * as tf from '@tensorflow/tfjs-core';

/** [B, C, H, W] (PyTorch) → [B, H, W, C] (ours). */
export function nchwToNhwc<T extends tf.Tensor4D>(x: T): tf.Tensor4D {
  return tf.transpose(x, [0, 2, 3, 1]);
}

/** [B, H, W, C] (ours) → [B, C, H, W] (PyTorch). */
export function nhwcToNchw<T extends tf.Tensor4D>(x: T): tf.Tensor4D {
  return tf.transpose(x, [0, 3, 1, 2]);
}

/** Largest |a − b| over all elements (both tensors are read back to the CPU). */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  if (a.shape.join() !== b.shape.join()) {
    throw new Error(`maxAbsDiff: shapes differ, [${a.shape}] vs [${b.shape}]`);
  }
  const x = a.dataSync();
  const y = b.dataSync();
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i] - y[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}
