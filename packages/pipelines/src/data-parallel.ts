import * as tf from '@tensorflow/tfjs-core';
import { type Communicator, Rng, crc32Portable } from '@matryoshka-ts/core';
import type { StreamPosition } from '@matryoshka-ts/data';
import type { StepGradients } from './train-step.js';

/** Gradients are reduced in buckets of at most this many bytes (PyTorch DDP's default, 25 MiB). */
export const BUCKET_BYTES = 25 * 2 ** 20;

/**
 * The generators of one step's batch parts: one 32-bit seed drawn from the run's generator
 * (identical on every rank), then one generator per part. Rank r of `parts` draws its condition
 * dropout, times and noise from part r; one process drawing every part
 * (`TrainStep.computeGradients(images, conditioning, parts)`) holds the same example at `parts`× the batch.
 */
export function batchPartRngs(rng: Rng, parts: number): Rng[] {
  const seed = rng.nextUint32();
  // A different odd multiplier per part spreads the seeds; Rng's own seeding mixes them further.
  return Array.from({ length: parts }, (_, p) => new Rng((seed ^ Math.imul(p + 1, 0x9e3779b1)) >>> 0));
}

/**
 * Data-parallel training over a `Communicator`: every rank holds the same weights, draws its own
 * part of the batch, and applies the gradients averaged over the ranks (bucketed all-reduce, before
 * clipping and Adam), so every rank makes the same update. Also measures what the reduction costs.
 */
export class DataParallel {
  /** Seconds spent reducing gradients, bytes reduced, and steps reduced, since construction. */
  reduceSeconds = 0;
  reducedBytes = 0;
  reducedSteps = 0;
  /** The gradient buckets' buffers, kept between steps (the layout is the same every step). */
  private readonly buffers: Float32Array[] = [];

  constructor(
    readonly comm: Communicator,
    readonly bucketBytes = BUCKET_BYTES,
  ) {}

  get rank(): number {
    return this.comm.rank;
  }

  get world(): number {
    return this.comm.world;
  }

  /** This rank's generator for the step's draws (see `batchPartRngs`). */
  partRng(rng: Rng): Rng {
    return batchPartRngs(rng, this.world)[this.rank];
  }

  /** Every rank's variables take rank 0's values (fresh weights, or a checkpoint only rank 0 read). */
  async broadcastVariables(variables: readonly tf.Variable[]): Promise<void> {
    for (const bucket of this.buckets(variables)) {
      const flat = await this.flatten(bucket);
      this.comm.broadcast(flat, 0);
      if (this.rank === 0) continue;
      const values = this.split(flat, bucket);
      bucket.forEach((v, i) => v.assign(values[i]));
      tf.dispose(values);
    }
  }

  /**
   * The step's gradients, loss and per-level errors averaged over the ranks (each rank's are
   * means over its part of the batch, so the average is the mean over the whole batch). Frees the
   * given gradients. A non-finite loss on any rank makes the average non-finite: every rank then
   * skips the update together.
   */
  async averageGradients(step: StepGradients): Promise<StepGradients> {
    const started = performance.now();
    const names = [...step.grads.keys()];
    const tensors = names.map((n) => step.grads.get(n)!);
    const reduced: tf.Tensor[] = [];
    for (const [b, bucket] of this.buckets(tensors).entries()) {
      const flat = await this.flatten(bucket, b);
      this.comm.allReduce(flat, 'mean');
      this.reducedBytes += flat.byteLength;
      reduced.push(...this.split(flat, bucket));
    }
    tf.dispose(tensors);
    const averaged = new Map(names.map((name, i) => [name, reduced[i]]));
    const scalars = Float64Array.from([step.loss, ...step.mse]);
    this.comm.allReduce(scalars, 'mean');
    this.reduceSeconds += (performance.now() - started) / 1000;
    this.reducedSteps += 1;
    return { loss: scalars[0], mse: [...scalars.subarray(1)], grads: averaged };
  }

  /**
   * Throws unless every rank holds the same values (a CRC-32 of their bytes, compared by min and
   * max over the ranks): the check that the ranks made the same updates, before a checkpoint.
   */
  async checkSame(tensors: Iterable<tf.Tensor>, what: string): Promise<void> {
    let crc = 0;
    for (const t of tensors) {
      const values = (await t.data()) as Float32Array;
      crc = crc32Portable(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), crc);
    }
    const low = Float64Array.of(crc);
    const high = Float64Array.of(crc);
    this.comm.allReduce(low, 'min');
    this.comm.allReduce(high, 'max');
    if (low[0] !== high[0])
      throw new Error(`the ranks hold different ${what} (CRC-32 from ${low[0]} to ${high[0]}): they diverged`);
  }

  /** Every rank's `values` (the same count on each), in rank order: an all-gather by a sum. */
  gather(values: readonly number[]): number[][] {
    const k = values.length;
    const all = new Float64Array(this.world * k);
    all.set(values, this.rank * k);
    this.comm.allReduce(all, 'sum');
    return Array.from({ length: this.world }, (_, r) => [...all.subarray(r * k, (r + 1) * k)]);
  }

  /** Every rank's stream position (epoch, cursor, frame within a clip), in rank order. */
  gatherPositions(position: StreamPosition): StreamPosition[] {
    // The all-gather carries numbers only: −1 stands for "no frame".
    return this.gather([position.epoch, position.cursor, position.frame ?? -1]).map(([epoch, cursor, frame]) => ({
      epoch,
      cursor,
      ...(frame >= 0 ? { frame } : {}),
    }));
  }

  /**
   * What the all-reduce costs, for the log: with a step's seconds, its share of the step and the
   * bytes reduced; without, the seconds it takes (waiting for the slowest rank included).
   */
  describeCost(stepSeconds?: number): string {
    const steps = Math.max(1, this.reducedSteps);
    const seconds = this.reduceSeconds / steps;
    const mib = this.reducedBytes / steps / 2 ** 20;
    const cost =
      stepSeconds === undefined
        ? `${seconds.toFixed(3)} s/step`
        : `${((100 * seconds) / stepSeconds).toFixed(0)}% of a step (${mib.toFixed(1)} MiB)`;
    return `${this.world} ranks, all-reduce ${cost}`;
  }

  /** Consecutive groups of tensors of at most `bucketBytes` (a larger tensor is a bucket alone). */
  private buckets<T extends tf.Tensor>(tensors: readonly T[]): T[][] {
    const out: T[][] = [];
    let current: T[] = [];
    let bytes = 0;
    for (const t of tensors) {
      if (current.length && bytes + t.size * 4 > this.bucketBytes) {
        out.push(current);
        current = [];
        bytes = 0;
      }
      current.push(t);
      bytes += t.size * 4;
    }
    if (current.length) out.push(current);
    return out;
  }

  /** The tensors' values, one after another, in bucket `slot`'s buffer (reused when it fits). */
  private async flatten(tensors: readonly tf.Tensor[], slot?: number): Promise<Float32Array> {
    const size = tensors.reduce((n, t) => n + t.size, 0);
    let flat = slot === undefined ? undefined : this.buffers[slot];
    if (flat?.length !== size) {
      flat = new Float32Array(size);
      if (slot !== undefined) this.buffers[slot] = flat;
    }
    const values = await Promise.all(tensors.map((t) => t.data() as Promise<Float32Array>));
    let offset = 0;
    for (const v of values) {
      flat.set(v, offset);
      offset += v.length;
    }
    return flat;
  }

  /** New tensors of the tensors' shapes holding their consecutive slices of `flat`. */
  private split(flat: Float32Array, tensors: readonly tf.Tensor[]): tf.Tensor[] {
    let offset = 0;
    return tensors.map((t) => {
      // slice(), not subarray(): a backend may keep the array it is given.
      const value = tf.tensor(flat.slice(offset, offset + t.size), t.shape, 'float32');
      offset += t.size;
      return value;
    });
  }
}
