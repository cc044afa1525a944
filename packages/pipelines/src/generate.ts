import * as tf from '@tensorflow/tfjs-core';
import { type DiffusionModel, type ParamLookup, type PredictionType, Rng } from '@matryoshka-ts/core';
import {
  type Denoiser,
  type Threshold,
  DYNAMIC_DEEPFLOYD,
  DYNAMIC_IMAGEN,
  classifierFreeGuidance,
  clipRowsNetwork,
  networkDenoiser,
  sampleAsync,
} from '@matryoshka-ts/samplers';
import { type LevelSchedules, samplingGrid } from '@matryoshka-ts/schedules';
import { type Conditioner, concatConditioning, conditionBatch, nullCondition } from './conditioning.js';

export interface GenerateOptions {
  /** One caption or label per image (an empty caption / null label samples unconditionally). */
  captions: string[];
  labels: number[];
  /** Sampling steps on the official grid. */
  steps: number;
  sampler: 'ddpm' | 'ddim';
  eta: number;
  /** Guidance weight w (1 = no guidance; the unconditional branch is the null condition). */
  guidance: number;
  threshold: 'none' | 'clip' | 'dynamic' | 'dynamic-deepfloyd';
  /** What the network was trained to predict (the run's `loss.prediction`). */
  prediction: PredictionType;
  seed: number;
  /**
   * A super-resolution stage's input: the noise-augmented low-resolution images (one per sample)
   * and their augmentation step; the caller keeps ownership.
   */
  lowRes?: { image: tf.Tensor4D; augTimes: number[] };
  /**
   * Awaited after each sampling step, with the state of every level (level 0 first; each clip or
   * image one row, [n, frames·r, r, c]), valid only during the call: a page draws the nest as it
   * denoises (the paper's Fig. 11).
   */
  onStep?: (index: number, total: number, x: readonly tf.Tensor4D[]) => void | Promise<void>;
}

const THRESHOLDS: Record<GenerateOptions['threshold'], Threshold> = {
  none: 'none',
  clip: 'clip',
  dynamic: DYNAMIC_IMAGEN,
  'dynamic-deepfloyd': DYNAMIC_DEEPFLOYD,
};

/** One level's samples: `images[k]` holds sample k's values, [frames, r, r, channels] in [−1, 1]. */
export interface LevelSamples {
  resolution: number;
  channels: number;
  frames: number;
  images: Float32Array[];
}

/** One level's samples as one NHWC tensor [n·frames, r, r, channels] (frames folded into the batch). */
export function levelSamplesTensor(level: LevelSamples): tf.Tensor4D {
  const { resolution: r, channels: c, frames, images } = level;
  const flat = new Float32Array(images.length * frames * r * r * c);
  images.forEach((image, k) => flat.set(image, k * image.length));
  return tf.tensor4d(flat, [images.length * frames, r, r, c]);
}

/**
 * Samples every level of `model` with parameters `P` (EMA weights for a trained model): starting
 * noise per level from `seed` ([n·frames, r, r, channels], frames folded into the batch), the
 * official K-step grid, classifier-free guidance with the null condition when w ≠ 1. Reads the
 * results asynchronously, so it runs on every backend (WebGPU in Node has no synchronous reads).
 */
export async function generate(
  model: DiffusionModel,
  P: ParamLookup,
  schedules: LevelSchedules,
  conditioner: Conditioner,
  options: GenerateOptions,
): Promise<LevelSamples[]> {
  const n = options.captions.length;
  const rng = new Rng(options.seed);
  const levels = model.levels;
  // A clip is one sample for the sampler ([n, F·r, r, C], the same values as [n·F, r, r, C]), so
  // dynamic thresholds take their quantile over the whole clip, as the official code does.
  const noise = levels.map(
    (l) => rng.normalTensor([n, l.frames * l.resolution, l.resolution, l.channels]) as tf.Tensor4D,
  );
  const cond = conditionBatch(conditioner, options.captions, options.labels);
  const guided = options.guidance !== 1 && conditioner.kind !== 'none';
  const nul = nullCondition(conditioner);
  const unconditional = guided
    ? conditionBatch(conditioner, new Array(n).fill(nul.caption), new Array(n).fill(nul.label))
    : undefined;
  const both = unconditional ? concatConditioning(unconditional, cond) : cond;
  if (options.lowRes) {
    // Both guidance branches see the same low-resolution image: it is input, not condition to drop.
    const { image, augTimes } = options.lowRes;
    both.lowRes = guided ? (tf.concat([image, image], 0) as tf.Tensor4D) : image;
    both.augTimes = guided ? [...augTimes, ...augTimes] : augTimes;
  }
  const run = (x: tf.Tensor4D[], times: number[]) => model.forward({ x, times, ...both }, { params: P });
  const frames = levels.map((l) => l.frames);
  const plain: Denoiser = networkDenoiser(clipRowsNetwork(run, frames));
  const denoiser = guided ? classifierFreeGuidance(plain, options.guidance) : plain;
  const ownLowRes = guided ? both.lowRes : undefined;
  try {
    const out = await sampleAsync(denoiser, noise, samplingGrid(options.steps, schedules[0].steps), {
      schedules,
      sampler: options.sampler,
      eta: options.eta,
      threshold: THRESHOLDS[options.threshold],
      predictionType: options.prediction,
      rng,
      onStep: options.onStep ? (i, total, _t, x) => options.onStep!(i, total, x) : undefined,
    });
    const data = await Promise.all(out.map((t) => t.data() as Promise<Float32Array>)).finally(() => tf.dispose(out));
    return data.map((values, i): LevelSamples => {
      const { resolution, channels, frames } = levels[i];
      const size = frames * resolution * resolution * channels;
      return {
        resolution,
        channels,
        frames,
        images: Array.from({ length: n }, (_, k) => values.slice(k * size, (k + 1) * size)),
      };
    });
  } finally {
    tf.dispose(
      [
        ...noise,
        cond.tokens,
        cond.mask,
        cond.labels,
        unconditional?.tokens,
        unconditional?.mask,
        unconditional?.labels,
        both.tokens,
        both.mask,
        both.labels,
        ownLowRes,
      ].filter((t) => t !== undefined) as tf.Tensor[],
    );
  }
}
