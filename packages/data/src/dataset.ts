import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@matryoshka-ts/core';

/** One training example: an RGB image (or a clip of frames) with its caption and class label. */
export interface Example {
  /**
   * [resolution, resolution, 3] RGB, 8 bits; for a data set with `frames` > 1, that many such frames
   * one after another (frame-major: [frames, resolution, resolution, 3]).
   */
  image: Uint8Array;
  caption: string;
  label: number;
}

/** A finite, indexable image (or video clip) data set at one square resolution. */
export interface ImageDataset {
  /** Stable name, recorded in run configs. */
  readonly id: string;
  readonly size: number;
  readonly resolution: number;
  /**
   * Frames per example (default 1: an image data set). When greater than 1 each example is a clip:
   * its `image` holds `frames` consecutive [resolution, resolution, 3] frames, frame-major, and
   * `nextBatch` gives [batchSize · frames, resolution, resolution, 3] (clip-major).
   */
  readonly frames?: number;
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
  /**
   * [batchSize, r, r, 3]; for a data set of clips ({@link ImageDataset.frames} > 1),
   * [batchSize · frames, r, r, 3], clip-major: sample b's frame f is row b · frames + f. Captions and
   * labels stay one per sample.
   */
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
 * `position` in place. Pixels are mapped from 0…255 to [−1, 1] as (v / 127.5) − 1. For a data set
 * of clips (`frames` > 1) the images are [batchSize · frames, r, r, 3], sample b's frames in rows
 * b · frames … b · frames + frames − 1; the order of samples does not depend on `frames`.
 */
export function nextBatch(dataset: ImageDataset, batchSize: number, seed: number, position: DataPosition): Batch {
  const r = dataset.resolution;
  const frames = dataset.frames ?? 1;
  if (!(Number.isInteger(frames) && frames >= 1)) {
    throw new RangeError(`nextBatch: ${dataset.id}: frames must be a positive integer, got ${frames}`);
  }
  const sampleSize = frames * r * r * 3;
  const pixels = new Float32Array(batchSize * sampleSize);
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
    if (frames > 1 && example.image.length !== sampleSize) {
      throw new RangeError(
        `nextBatch: ${dataset.id}: example ${order[position.cursor]} has ${example.image.length} bytes, ` +
          `expected ${sampleSize} (${frames} frames of ${r}×${r}×3)`,
      );
    }
    position.cursor += 1;
    const offset = b * sampleSize;
    for (let i = 0; i < example.image.length; i++) pixels[offset + i] = example.image[i] / 127.5 - 1;
    captions.push(example.caption);
    labels.push(example.label);
  }
  return { images: tf.tensor4d(pixels, [batchSize * frames, r, r, 3]), captions, labels };
}
