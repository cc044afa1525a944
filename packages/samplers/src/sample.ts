import * as tf from '@tensorflow/tfjs-core';
import type { PredictionType, Rng } from '@matryoshka-ts/core';
import type { Schedule } from '@matryoshka-ts/schedules';
import type { Denoiser } from './denoiser.js';
import { ddimStep, ddpmStep, posteriorVariance, predictX0, stepGammas } from './steps.js';
import { DYNAMIC_IMAGEN, type Threshold, applyThreshold } from './threshold.js';

/** The update rule: DDPM's posterior (ancestral) step or DDIM(η). */
export type SamplerKind = 'ddpm' | 'ddim';

/** How one step from grid time t to s turns predictions into the next state. */
export interface StepOptions {
  /** One schedule per level (level 0 first); each level reads γ from its own (shifted) float32 table. */
  schedules: readonly Schedule[];
  /** Update rule (default `ddpm`, the paper's; the official demo uses `ddim` with η = 0). */
  sampler?: SamplerKind;
  /** DDIM's η ≥ 0 (default 0: deterministic; 1: the DDPM posterior variance). Ignored by `ddpm`. */
  eta?: number;
  /** Thresholding of x̂0 (default `DYNAMIC_IMAGEN`, the paper's; the official configs use `clip`). */
  threshold?: Threshold;
  /** What the network predicts (default `v`, the paper's and the official code's). */
  predictionType?: PredictionType;
  /**
   * Source of the fresh noise z of DDPM and of DDIM with η > 0: per step, one N(0,1) tensor per
   * level, level 0 first; nothing is drawn on a step where β̃ = 0 (landing on s = 0).
   */
  rng?: Rng;
}

export interface SampleOptions extends StepOptions {
  /**
   * Called after step `index` (0-based, of `total`) from grid time t; `x` is the new state per
   * level, owned by the sampler and valid only during the call (clone to keep).
   */
  onStep?: (index: number, total: number, t: number, x: readonly tf.Tensor4D[]) => void;
  /** Clamp the returned images to [−1, 1] (default true, as the official pipeline does). */
  clampOutput?: boolean;
}

/** `sampleAsync`'s options: `onStep` may return a promise, awaited before the next step. */
export interface AsyncSampleOptions extends Omit<SampleOptions, 'onStep'> {
  onStep?: (index: number, total: number, t: number, x: readonly tf.Tensor4D[]) => void | Promise<void>;
}

function needsNoise(options: StepOptions): boolean {
  return (options.sampler ?? 'ddpm') === 'ddpm' || (options.eta ?? 0) > 0;
}

function checkLevels(x: readonly tf.Tensor4D[], options: StepOptions, what: string): void {
  if (x.length === 0) throw new Error(`${what}: no levels given`);
  if (options.schedules.length !== x.length) {
    throw new Error(
      `${what}: ${x.length} levels but ${options.schedules.length} schedules (one per level, level 0 first)`,
    );
  }
}

/**
 * One step of every level from grid time t to s (NHWC, level 0 first), given the network's
 * predictions at t: x̂0 from the prediction, thresholding, then the DDPM or DDIM update with each
 * level's own γ_t, γ_s. `z` (one N(0,1) tensor per level) is the fresh noise; when it is omitted
 * and the step needs noise, it is drawn from `options.rng`.
 */
export function stepFromPrediction(
  prediction: readonly tf.Tensor4D[],
  x: readonly tf.Tensor4D[],
  t: number,
  s: number,
  options: StepOptions,
  z?: readonly tf.Tensor4D[],
): tf.Tensor4D[] {
  checkLevels(x, options, 'stepFromPrediction');
  if (prediction.length !== x.length)
    throw new Error(`stepFromPrediction: ${prediction.length} predictions for ${x.length} levels`);
  if (z && z.length !== x.length)
    throw new Error(`stepFromPrediction: ${z.length} noise tensors for ${x.length} levels`);
  const sampler = options.sampler ?? 'ddpm';
  const eta = options.eta ?? 0;
  const threshold = options.threshold ?? DYNAMIC_IMAGEN;
  const type = options.predictionType ?? 'v';
  return tf.tidy(() =>
    x.map((xT, n) => {
      const gammas = stepGammas(options.schedules[n], t, s);
      const x0 = applyThreshold(predictX0(prediction[n], xT, gammas.gammaT, type), threshold);
      const noisy = needsNoise(options) && posteriorVariance(gammas) > 0;
      const noise = noisy ? (z?.[n] ?? drawNoise(options.rng, xT.shape)) : undefined;
      return sampler === 'ddpm' ? ddpmStep(x0, xT, gammas, noise) : ddimStep(x0, xT, gammas, eta, noise);
    }),
  );
}

function drawNoise(rng: Rng | undefined, shape: number[]): tf.Tensor4D {
  if (!rng) throw new Error('this step adds fresh noise (DDPM, or DDIM with eta > 0): pass options.rng or the noise z');
  return rng.normalTensor(shape) as tf.Tensor4D;
}

/** One sampling step t → s of every level (NHWC, level 0 first): runs the denoiser at t, then `stepFromPrediction`. */
export function sampleStep(
  denoiser: Denoiser,
  x: readonly tf.Tensor4D[],
  t: number,
  s: number,
  options: StepOptions,
): tf.Tensor4D[] {
  return tf.tidy(() => stepFromPrediction(denoiser([...x], t), x, t, s, options));
}

function checkGrid(grid: readonly number[]): void {
  if (grid.length < 2) throw new Error(`the grid needs at least two times (one step), got [${grid}]`);
  for (let i = 1; i < grid.length; i++) {
    if (!(grid[i] < grid[i - 1]))
      throw new Error(`the grid must decrease strictly (a step goes from grid[i] to grid[i + 1]), got [${grid}]`);
  }
}

/** The state after one sampling step: `x` is owned by the sampler and valid until the next step. */
interface AfterStep {
  index: number;
  total: number;
  t: number;
  x: readonly tf.Tensor4D[];
}

/**
 * The loop `sample` and `sampleAsync` share: checks, then yields after every step and returns the
 * final images. Stopped early (`return()`, or a caller's error), it frees its current state.
 */
function* sampling(
  denoiser: Denoiser,
  noise: readonly tf.Tensor4D[],
  grid: readonly number[],
  options: SampleOptions,
): Generator<AfterStep, tf.Tensor4D[], void> {
  checkLevels(noise, options, 'sample');
  checkGrid(grid);
  const batch = noise[0].shape[0];
  noise.forEach((level, n) => {
    if (level.shape[0] !== batch)
      throw new Error(`sample: level ${n} holds ${level.shape[0]} samples, level 0 holds ${batch}`);
  });
  // Fail before any work: every grid time must index every level's table.
  for (let i = 0; i + 1 < grid.length; i++)
    options.schedules.forEach((schedule) => stepGammas(schedule, grid[i], grid[i + 1]));
  if (needsNoise(options) && !options.rng)
    throw new Error('sample: DDPM and DDIM with eta > 0 need options.rng for the fresh noise');

  const total = grid.length - 1;
  let x: readonly tf.Tensor4D[] = noise;
  let finished = false;
  try {
    for (let i = 0; i < total; i++) {
      const next = sampleStep(denoiser, x, grid[i], grid[i + 1], options);
      if (x !== noise) tf.dispose([...x]);
      x = next;
      yield { index: i, total, t: grid[i], x };
    }
    finished = true;
  } finally {
    if (!finished && x !== noise) tf.dispose([...x]);
  }
  if (options.clampOutput === false) return [...x];
  const clamped = tf.tidy(() => x.map((level) => tf.clipByValue(level, -1, 1) as tf.Tensor4D));
  tf.dispose([...x]);
  return clamped;
}

/**
 * Samples all levels jointly along `grid` (decreasing grid times, e.g. `samplingGrid(K)`), from
 * `noise` (one NHWC tensor per level, level 0 first, used as x at grid[0]); step i goes from
 * grid[i] to grid[i + 1] with the same t for every level. Returns the final images per level
 * (clamped to [−1, 1] unless `clampOutput` is false). The noise stays the caller's.
 */
export function sample(
  denoiser: Denoiser,
  noise: readonly tf.Tensor4D[],
  grid: readonly number[],
  options: SampleOptions,
): tf.Tensor4D[] {
  const run = sampling(denoiser, noise, grid, options);
  for (let step = run.next(); ; step = run.next()) {
    if (step.done) return step.value;
    const { index, total, t, x } = step.value;
    try {
      options.onStep?.(index, total, t, x);
    } catch (error) {
      run.return([]);
      throw error;
    }
  }
}

/**
 * `sample`, awaiting `onStep` after every step: a page redraws and a progress bar moves between
 * steps, and the callback may read the state asynchronously (`await x[n].data()`, what WebGPU in
 * Node needs). The same values as `sample` for the same inputs.
 */
export async function sampleAsync(
  denoiser: Denoiser,
  noise: readonly tf.Tensor4D[],
  grid: readonly number[],
  options: AsyncSampleOptions,
): Promise<tf.Tensor4D[]> {
  const run = sampling(denoiser, noise, grid, { ...options, onStep: undefined });
  for (let step = run.next(); ; step = run.next()) {
    if (step.done) return step.value;
    const { index, total, t, x } = step.value;
    try {
      await options.onStep?.(index, total, t, x);
    } catch (error) {
      run.return([]);
      throw error;
    }
  }
}
