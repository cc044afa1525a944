import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '@matryoshka-ts/core';
import { type DownsampleMethod, downsample, noisyImage } from '@matryoshka-ts/losses';
import { type Schedule, gridTimeOf, networkTimeOf } from '@matryoshka-ts/schedules';

/**
 * Noise-conditioning augmentation of a cascade's low-resolution input (Saharia et al. 2022, as
 * the paper's Appendix D.1 follows): the conditioning image is q-sampled with the diffusion's own
 * schedule, z = √ᾱ·x_low + √(1−ᾱ)·ε, and the super-resolution stage is told the step. The step
 * follows the project's time convention: index i ∈ {0 … steps−1} uses table entry i + 1, so
 * augmentation level L ∈ {1 … steps} (the paper's sweep: 1, 100, 500, 700, 1000) is index L − 1.
 */
export interface AugmentedLowRes {
  /** The noisy low-resolution image, NHWC at the base resolution. */
  lowRes: tf.Tensor4D;
  /** The augmentation step index per sample (the network's `augTimes`). */
  augTimes: number[];
}

/**
 * Training: the low-resolution view of `images` (downsampled to `baseResolution` with `method`)
 * noised at a step drawn uniformly per sample from {0 … steps−1}. Draws from `rng`: the B steps,
 * then the noise (NHWC order).
 */
export function augmentForTraining(
  images: tf.Tensor4D,
  baseResolution: number,
  schedule: Schedule,
  rng: Rng,
  method: DownsampleMethod = 'avgpool',
): AugmentedLowRes {
  const augTimes = Array.from({ length: images.shape[0] }, () => rng.int(schedule.steps));
  const low = downsample(images, baseResolution, method);
  const lowRes = noiseAt(low, augTimes, schedule, rng);
  low.dispose();
  return { lowRes, augTimes };
}

/**
 * Sampling: a base stage's output `lowRes` noised at one fixed augmentation level L ∈ {1 … steps}
 * for every sample. The noise comes from `rng`.
 */
export function augmentForSampling(lowRes: tf.Tensor4D, level: number, schedule: Schedule, rng: Rng): AugmentedLowRes {
  checkAugmentationLevel(level, schedule.steps);
  const augTimes = new Array<number>(lowRes.shape[0]).fill(networkTimeOf(level));
  return { lowRes: noiseAt(lowRes, augTimes, schedule, rng), augTimes };
}

/** An augmentation level must be a table entry with noise: 1 … steps. */
export function checkAugmentationLevel(level: number, steps: number): void {
  if (!Number.isInteger(level) || level < 1 || level > steps)
    throw new RangeError(`augmentation level ${level}: must be an integer in 1…${steps} (the schedule's steps)`);
}

/** q(z_i | x): √γ·x + √(1−γ)·ε with γ = the float32 table at gridTimeOf(i), as training draws γ. */
function noiseAt(x: tf.Tensor4D, augTimes: number[], schedule: Schedule, rng: Rng): tf.Tensor4D {
  return tf.tidy(() => {
    const eps = rng.normalTensor(x.shape) as tf.Tensor4D;
    const gamma = tf.tensor1d(
      augTimes.map((i) => schedule.gammasF32[gridTimeOf(i)]),
      'float32',
    );
    return noisyImage(x, eps, gamma);
  });
}
