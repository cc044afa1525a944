import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@matryoshka-ts/core';

/** One training example: an RGB image with its caption and class label. */
export interface Example {
  /** [resolution, resolution, 3] RGB, 8 bits. */
  image: Uint8Array;
  caption: string;
  label: number;
}

/** A finite, indexable image data set at one square resolution. */
export interface ImageDataset {
  /** Stable name, recorded in run configs. */
  readonly id: string;
  readonly size: number;
  readonly resolution: number;
  /** Class names, indexed by label. */
  readonly classNames: string[];
  get(index: number): Example;
  /** Examples skipped while loading, counted by reason (corrupt file, wrong size, …). */
  readonly skipped: Record<string, number>;
}

/** Where a stream of shuffled batches stands: enough to resume without repeating or skipping samples. */
export interface DataPosition {
  epoch: number;
  /** Index into the epoch's permutation of the next sample. */
  cursor: number;
}

/** A training batch: images in [−1, 1] (NHWC), captions, labels. */
export interface Batch {
  images: tf.Tensor4D;
  captions: string[];
  labels: number[];
}

/** The permutation of epoch `epoch`: a function of the seed and epoch alone, so a resumed run sees the same order. */
export function epochOrder(size: number, seed: number, epoch: number): Uint32Array {
  const rng = new Rng((seed * 1_000_003 + epoch * 7919 + 1) >>> 0);
  const order = new Uint32Array(size);
  for (let i = 0; i < size; i++) order[i] = i;
  for (let i = size - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/**
 * Draws the next batch of `batchSize` examples in the seeded per-epoch order, advancing
 * `position` in place. Pixels are mapped from 0…255 to [−1, 1] as (v / 127.5) − 1.
 */
export function nextBatch(dataset: ImageDataset, batchSize: number, seed: number, position: DataPosition): Batch {
  const r = dataset.resolution;
  const pixels = new Float32Array(batchSize * r * r * 3);
  const captions: string[] = [];
  const labels: number[] = [];
  let order = epochOrder(dataset.size, seed, position.epoch);
  for (let b = 0; b < batchSize; b++) {
    if (position.cursor >= dataset.size) {
      position.epoch += 1;
      position.cursor = 0;
      order = epochOrder(dataset.size, seed, position.epoch);
    }
    const example = dataset.get(order[position.cursor]);
    position.cursor += 1;
    const offset = b * r * r * 3;
    for (let i = 0; i < example.image.length; i++) pixels[offset + i] = example.image[i] / 127.5 - 1;
    captions.push(example.caption);
    labels.push(example.label);
  }
  return { images: tf.tensor4d(pixels, [batchSize, r, r, 3]), captions, labels };
}
