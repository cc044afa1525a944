// The setting of the data-parallel check (data-parallel.test.ts and the ranks it starts,
// data-parallel.rank.ts): the micro preset's model (8 → 4 px), clipping and EMA on, fixed batches.
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@matryoshka-ts/core';
import { TRAIN_PRESETS } from './train-presets.js';
import { levelSchedulesOf, modelConfigOf, parseTrainConfig } from './config.js';
import type { TrainStepOptions } from './train-step.js';

const config = parseTrainConfig({ ...TRAIN_PRESETS.micro, backend: 'cpu' });

export const DP_CHECK = {
  seed: 3,
  steps: 3,
  batchPerRank: 2,
  // Small buckets, so the check crosses bucket boundaries (the micro model's gradients are ~100 KB).
  bucketBytes: 16 * 1024,
  encoder: config.conditioning.encoder,
};
export const dpModelConfig = modelConfigOf(config);
export const dpSchedules = levelSchedulesOf(config);
export const dpStepOptions: TrainStepOptions = {
  loss: { prediction: 'v', target: 'eps' },
  // Clipping acts on the averaged gradient's norm: a rank-local norm would differ.
  optimizer: { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, warmupSteps: 0, clipNorm: 0.5 },
  ema: { decay: 0.9, warmup: false },
};

const CAPTIONS = ['grinning face', 'face with tears of joy', 'red heart', 'thumbs up', 'fire', 'rocket'];

/** Step s's whole batch of n images in [−1, 1] and captions: the same on every rank and in the reference. */
export function dpBatch(s: number, n: number): { images: tf.Tensor4D; captions: string[] } {
  const images = tf.tidy(() => tf.clipByValue(new Rng(100 + s).normalTensor([n, 8, 8, 3]), -1, 1) as tf.Tensor4D);
  return { images, captions: Array.from({ length: n }, (_, i) => CAPTIONS[(s + i) % CAPTIONS.length]) };
}
