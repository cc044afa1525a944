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

/**
 * A clip stored as one image (the official code's video layout) → our frames-in-the-batch layout:
 * [B, G·h, G·w, C] with frame k the tile in row k // G, column k % G (row-major) becomes
 * [B·F, h, w, C] with F = G² and sample b's frame k at row b·F + k.
 */
export function tiledToFrames(x: tf.Tensor4D, frames: number): tf.Tensor4D {
  const g = tileGrid(frames);
  const [b, height, width, c] = x.shape;
  if (height % g !== 0 || width % g !== 0)
    throw new Error(`tiledToFrames: a ${height}×${width} clip image does not split into ${g}×${g} tiles`);
  const [h, w] = [height / g, width / g];
  return tf.tidy(() => {
    // [B, G·h, G·w, C] = [B·G(n), h, G(m), w·C] in memory; swapping h and m puts tile (n, m) together.
    const t = tf.transpose(tf.reshape(x, [b * g, h, g, w * c]), [0, 2, 1, 3]);
    return tf.reshape(t, [b * frames, h, w, c]);
  });
}

/** The inverse of `tiledToFrames`: [B·F, h, w, C] → [B, G·h, G·w, C] with G = √F. */
export function framesToTiled(x: tf.Tensor4D, frames: number): tf.Tensor4D {
  const g = tileGrid(frames);
  const [rows, h, w, c] = x.shape;
  if (rows % frames !== 0) throw new Error(`framesToTiled: ${rows} rows are not whole clips of ${frames} frames`);
  const b = rows / frames;
  return tf.tidy(() => {
    const t = tf.transpose(tf.reshape(x, [b * g, g, h, w * c]), [0, 2, 1, 3]);
    return tf.reshape(t, [b, g * h, g * w, c]);
  });
}

/** G = √F for a clip of F frames tiled G × G; F must be a perfect square. */
export function tileGrid(frames: number): number {
  const g = Math.round(Math.sqrt(frames));
  if (!(Number.isInteger(frames) && frames >= 1 && g * g === frames))
    throw new Error(
      `a clip of ${frames} frames cannot be tiled: the tiled layout needs a square frame count (4, 16, …)`,
    );
  return g;
}

/**
 * Clips as one tall image per sample: [B·F, h, w, C] → [B, F·h, w, C], the same memory. Per-sample
 * operations (noise levels, losses, thresholds) then treat a clip as one sample.
 */
export function framesToClipRows(x: tf.Tensor4D, frames: number): tf.Tensor4D {
  const [rows, h, w, c] = x.shape;
  if (rows % frames !== 0) throw new Error(`framesToClipRows: ${rows} rows are not whole clips of ${frames} frames`);
  return frames === 1 ? x : tf.reshape(x, [rows / frames, frames * h, w, c]);
}

/** The inverse of `framesToClipRows`: [B, F·h, w, C] → [B·F, h, w, C]. */
export function clipRowsToFrames(x: tf.Tensor4D, frames: number): tf.Tensor4D {
  const [b, height, w, c] = x.shape;
  if (height % frames !== 0) throw new Error(`clipRowsToFrames: height ${height} is not ${frames} frames tall`);
  return frames === 1 ? x : tf.reshape(x, [b * frames, height / frames, w, c]);
}
