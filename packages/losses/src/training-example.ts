import * as tf from '@tensorflow/tfjs-core';
import { type Rng, framesToClipRows } from '@matryoshka-ts/core';
import { type LevelSchedules, gridTimeOf } from '@matryoshka-ts/schedules';
import { type NoisyLevels, noiseLevels } from './forward-process.js';
import { type DownsampleMethod, lowResolutionTargets } from './low-resolution.js';

/**
 * One training batch, noised at every level (level 0 first; NHWC), with the times the network receives;
 * `tf.dispose(example)` frees it.
 */
export type TrainingExample = NoisyLevels & {
  /**
   * The 0-based training index t per sample (the network's time input); γ_N = level N's table at
   * `gridTimeOf(t)` = t + 1.
   */
  times: number[];
};

export interface TrainingExampleOptions {
  /**
   * Each level's schedule, level 0 first (`levelSchedules`); γ is read from its float32 table, as the official code
   * does.
   */
  schedules: LevelSchedules;
  /** Each level's resolution, level 0 first (level 0 = the image's). */
  resolutions: readonly number[];
  /** How the lower levels' clean images are made (default `avgpool`, as the official code). */
  downsample?: DownsampleMethod;
  /**
   * Frames per sample at each level (default all 1). `images` then holds clips, [B·F0, r, r, C],
   * and every level of the example is a clip as one sample: [B, F·r, r, C] (the same memory), so
   * γ, the noise and the loss are per clip.
   */
  frames?: readonly number[];
}

/**
 * Draws one training example from a batch of level-0 images (NHWC, [B, H, W, C]): the clean
 * image of every level, t ∈ {0 … steps−1} uniform per sample, independent N(0,1) noise per level,
 * γ_N = that level's table at t + 1 (`gridTimeOf`), and x_t = √γ·x0 + √(1−γ)·ε. All draws come from `rng`, in
 * this order: the B times, then level 0's noise, level 1's, … (NHWC element order).
 */
export function drawTrainingExample(images: tf.Tensor4D, options: TrainingExampleOptions, rng: Rng): TrainingExample {
  const { resolutions } = options;
  const tables = options.schedules.map((s) => s.gammasF32);
  if (tables.length !== resolutions.length)
    throw new Error(`drawTrainingExample: ${tables.length} schedules for ${resolutions.length} levels`);
  const steps = tables[0].length - 1;
  tables.forEach((table, n) => {
    if (table.length !== steps + 1)
      throw new Error(`level ${n}: table has ${table.length} entries, level 0's has ${steps + 1}`);
    if (table[0] !== 1) throw new Error(`level ${n}: a table must start with ᾱ = 1 (gammas[0] = 1), got ${table[0]}`);
  });
  const frames = options.frames ?? resolutions.map(() => 1);
  const batch = images.shape[0] / frames[0];
  const times = Array.from({ length: batch }, () => rng.int(steps));
  return tf.tidy(() => {
    const x0 = lowResolutionTargets(images, resolutions, options.downsample, frames).map((x, n) =>
      framesToClipRows(x, frames[n]),
    );
    const eps = x0.map((x) => rng.normalTensor(x.shape) as tf.Tensor4D);
    const gamma = tables.map((table) =>
      tf.tensor1d(
        times.map((t) => table[gridTimeOf(t)]),
        'float32',
      ),
    );
    return { times, ...noiseLevels(x0, eps, gamma) };
  });
}

/**
 * The example of a batch drawn in parts, as data-parallel ranks draw it: the batch is
 * `rngs.length` equal consecutive parts (whole clips), and part p's times and noise come from
 * `rngs[p]` exactly as `drawTrainingExample` draws them. So one process drawing `[rng0, rng1]` at
 * batch 2B holds the example two ranks draw at batch B with `rng0` and `rng1`: the reference of
 * data-parallel training. One generator is `drawTrainingExample` itself.
 */
export function drawTrainingExampleInParts(
  images: tf.Tensor4D,
  options: TrainingExampleOptions,
  rngs: readonly Rng[],
): TrainingExample {
  if (rngs.length === 1) return drawTrainingExample(images, options, rngs[0]);
  const framesPerSample = options.frames?.[0] ?? 1;
  const batch = images.shape[0] / framesPerSample;
  if (!Number.isInteger(batch / rngs.length))
    throw new Error(`drawTrainingExampleInParts: a batch of ${batch} does not split into ${rngs.length} equal parts`);
  const rows = (batch / rngs.length) * framesPerSample;
  const parts = rngs.map((rng, p) => {
    const slice = tf.slice(images, [p * rows], [rows]);
    const part = drawTrainingExample(slice, options, rng);
    slice.dispose();
    return part;
  });
  const joined = tf.tidy(() => {
    const join = <T extends tf.Tensor>(field: 'x0' | 'eps' | 'gamma' | 'xt') =>
      parts[0][field].map((_, n) => tf.concat(parts.map((part) => part[field][n] as T))) as T[];
    return {
      x0: join<tf.Tensor4D>('x0'),
      eps: join<tf.Tensor4D>('eps'),
      gamma: join<tf.Tensor1D>('gamma'),
      xt: join<tf.Tensor4D>('xt'),
    };
  });
  const times = parts.flatMap((part) => part.times);
  tf.dispose(parts);
  return { times, ...joined };
}
