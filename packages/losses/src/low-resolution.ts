import * as tf from '@tensorflow/tfjs-core';

/**
 * How a level's clean image is made from the level above it: `avgpool` (the official code: a
 * box filter over ratio×ratio blocks) or `bilinear` (the paper's D^r as a resize with half-pixel
 * centres, no antialiasing). Targets are data: no gradient flows through them (and
 * resizeBilinear's gradient is wrong with half-pixel centres in tfjs).
 */
export type DownsampleMethod = 'avgpool' | 'bilinear';

/** An NHWC image downsampled to `size`×`size` (square images; for `avgpool` the size must divide the input's). */
export function downsample(image: tf.Tensor4D, size: number, method: DownsampleMethod = 'avgpool'): tf.Tensor4D {
  const [, h, w] = image.shape;
  if (h !== w) throw new Error(`downsample: images must be square, got ${h}×${w}`);
  if (!(Number.isInteger(size) && size >= 1 && size <= h))
    throw new Error(`downsample: cannot make ${size}×${size} from ${h}×${h}`);
  if (size === h) return tf.clone(image);
  if (method === 'bilinear') return tf.image.resizeBilinear(image, [size, size], false, true);
  if (method !== 'avgpool')
    throw new Error(`downsample: unknown method '${String(method)}' (expected avgpool or bilinear)`);
  const ratio = h / size;
  if (!Number.isInteger(ratio)) throw new Error(`downsample: average pooling needs ${size} to divide ${h}`);
  // x_low[i, j] = mean of x over the ratio×ratio block at (ratio·i, ratio·j).
  return tf.avgPool(image, ratio, ratio, 'valid');
}

/**
 * Clean images of every level (NHWC, level 0 first) from the level-0 image: level N is level
 * N−1 downsampled by the ratio of their resolutions (cascaded, as the official pipeline does).
 * Video (`frames` per level, a clip's frames adjacent rows [B·F, r, r, C]): a level with the same
 * frames downsamples each frame; a level of one frame below a clip takes its first frame (the
 * paper's temporal D^r, first-frame indexing).
 */
export function lowResolutionTargets(
  image: tf.Tensor4D,
  resolutions: readonly number[],
  method: DownsampleMethod = 'avgpool',
  frames?: readonly number[],
): tf.Tensor4D[] {
  if (resolutions.length === 0) throw new Error('lowResolutionTargets: need at least one level');
  if (image.shape[1] !== resolutions[0]) {
    throw new Error(`lowResolutionTargets: the image is ${image.shape[1]} px but level 0 is ${resolutions[0]} px`);
  }
  const F = frames ?? resolutions.map(() => 1);
  if (F.length !== resolutions.length)
    throw new Error(`lowResolutionTargets: ${F.length} frame counts for ${resolutions.length} levels`);
  if (image.shape[0] % F[0] !== 0)
    throw new Error(`lowResolutionTargets: ${image.shape[0]} rows are not whole clips of ${F[0]} frames`);
  resolutions.forEach((r, n) => {
    if (n > 0 && !(r <= resolutions[n - 1]))
      throw new Error(
        `lowResolutionTargets: level ${n} (${r} px) is larger than level ${n - 1} (${resolutions[n - 1]} px)`,
      );
    if (n > 0 && F[n] !== F[n - 1] && F[n] !== 1)
      throw new Error(
        `lowResolutionTargets: level ${n} has ${F[n]} frames below a clip of ${F[n - 1]}; ` +
          'a level keeps its clip or takes its first frame',
      );
  });
  return tf.tidy(() => {
    const levels = [tf.clone(image)];
    for (let n = 1; n < resolutions.length; n++) {
      const above = F[n] < F[n - 1] ? firstFrames(levels[n - 1], F[n - 1]) : levels[n - 1];
      levels.push(downsample(above, resolutions[n], method));
    }
    return levels;
  });
}

/** Frame 0 of every clip: [B·F, r, r, C] → [B, r, r, C]. */
export function firstFrames(clips: tf.Tensor4D, frames: number): tf.Tensor4D {
  const [rows, h, w, c] = clips.shape;
  return tf.tidy(() => {
    const first = tf.slice(tf.reshape(clips, [rows / frames, frames, h * w * c]), [0, 0, 0], [-1, 1, -1]);
    return tf.reshape(first, [rows / frames, h, w, c]);
  });
}
