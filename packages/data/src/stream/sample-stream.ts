import { DataError } from '@matryoshka-ts/core';
import type { DataPosition } from '../dataset.js';
import { type SampleRef, type ShardedSource, type SkipCounts, countSkip } from '../sources/source.js';
import { SAMPLE_SHUFFLE, derivedRng } from './seeds.js';
import { shardOrder } from './shard-order.js';
import { ShuffleBuffer } from './shuffle-buffer.js';

/** Where and how a stream reads: the seed, the process's rank among `world`, the buffer size. */
export interface EpochOptions {
  seed: number;
  /** This process's index among `world` processes reading disjoint shards (default 0 of 1). */
  rank?: number;
  world?: number;
  /** Samples mixed across consecutive shards (default 1000; 0 or 1: shards' stored order). */
  shuffleBuffer?: number;
}

export const DEFAULT_SHUFFLE_BUFFER = 1000;

/**
 * The references of one epoch for one rank, in training order: this rank's shards in the epoch's
 * shard order, each scanned in stored order, mixed by a shuffle buffer whose generator depends on
 * (seed, epoch, rank) only. No image data is read, so replaying an epoch is cheap. Bad entries are
 * counted in `skipped` by the sources' `scan`.
 */
export async function* epochRefs(
  source: ShardedSource,
  epoch: number,
  options: EpochOptions,
  skipped: SkipCounts,
): AsyncGenerator<SampleRef> {
  const rank = options.rank ?? 0;
  const buffer = new ShuffleBuffer<SampleRef>(
    options.shuffleBuffer ?? DEFAULT_SHUFFLE_BUFFER,
    derivedRng(options.seed, SAMPLE_SHUFFLE, epoch, rank),
  );
  for (const shard of shardOrder(source.shards.length, options.seed, epoch, rank, options.world ?? 1)) {
    for await (const ref of source.scan(shard, skipped)) {
      const out = buffer.push(ref);
      if (out !== undefined) yield out;
    }
  }
  for (let out = buffer.drain(); out !== undefined; out = buffer.drain()) yield out;
}

export interface SampleStreamOptions extends EpochOptions {
  /** Continue from a saved position (default: the start of epoch 0). */
  position?: DataPosition;
}

/**
 * An endless stream of sample references over a sharded source: epoch after epoch, each in the
 * order of `epochRefs`. Its `position` — { epoch, cursor = references emitted in this epoch } —
 * has the shape of `DataPosition`, so a trainer checkpoint stores it as it stores the bundled data
 * set's. A stream created from a position replays that epoch's order over references only and
 * drops the first `cursor`, so the resumed stream continues exactly where the saved one stood.
 */
export class SampleStream {
  private epoch: number;
  private cursor: number;
  /** References still to drop before the first emission (a resumed stream). */
  private replay: number;
  private iterator: AsyncGenerator<SampleRef> | undefined;
  /** Skips of finished epochs; the current epoch's are in `epochSkipped`. */
  private readonly earlier: SkipCounts = {};
  private epochSkipped: SkipCounts = {};
  /** Skips seen while replaying: counted by the run that read those samples, not again here. */
  private replayedSkipped: SkipCounts = {};
  /** `skipped` as of the last `takeSkipped` call. */
  private taken: SkipCounts = {};
  /** Serialises `next` calls: the epoch generator must not be advanced concurrently. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly source: ShardedSource,
    private readonly options: SampleStreamOptions,
  ) {
    if (source.shards.length === 0) {
      throw new DataError(`${source.id}: the source has no shards (no files matched); nothing to read`);
    }
    // Fails now, with the message about shards and processes, rather than at the first read.
    shardOrder(source.shards.length, options.seed, 0, options.rank ?? 0, options.world ?? 1);
    const position = options.position ?? { epoch: 0, cursor: 0 };
    if (
      !Number.isInteger(position.epoch) ||
      position.epoch < 0 ||
      !Number.isInteger(position.cursor) ||
      position.cursor < 0
    ) {
      throw new Error(`sample stream: bad position ${JSON.stringify(position)}`);
    }
    this.epoch = position.epoch;
    this.cursor = position.cursor;
    this.replay = position.cursor;
  }

  /** Where the stream stands: the epoch, and the references emitted in it so far. */
  get position(): DataPosition {
    return { epoch: this.epoch, cursor: this.cursor };
  }

  /**
   * Entries skipped while scanning (by reason), since this stream was created — including those
   * scanned ahead of the references emitted so far (the shuffle buffer reads ahead).
   */
  get skipped(): SkipCounts {
    const total: SkipCounts = { ...this.earlier };
    for (const [reason, n] of Object.entries(this.epochSkipped)) {
      const fresh = n - (this.replayedSkipped[reason] ?? 0);
      if (fresh > 0) countSkip(total, reason, fresh);
    }
    return total;
  }

  /**
   * The skips counted since the previous call. Called after each `next`, it ties every skip to the
   * first reference emitted after it was found, so a consumer that reads ahead (a decode queue) can
   * count a skip when it consumes that reference: its totals then depend on its position only.
   */
  takeSkipped(): SkipCounts {
    const now = this.skipped;
    const fresh: SkipCounts = {};
    for (const [reason, n] of Object.entries(now))
      if (n > (this.taken[reason] ?? 0)) fresh[reason] = n - (this.taken[reason] ?? 0);
    this.taken = now;
    return fresh;
  }

  /** The next reference in training order; epochs follow one another forever. */
  next(): Promise<SampleRef> {
    const result = this.queue.then(() => this.advance());
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Stops reading (closes the current shard's files). */
  async close(): Promise<void> {
    await this.queue;
    await this.iterator?.return(undefined);
    this.iterator = undefined;
  }

  private async advance(): Promise<SampleRef> {
    for (;;) {
      if (!this.iterator) await this.startEpoch();
      const step = await this.iterator!.next();
      if (!step.done) {
        this.cursor += 1;
        return step.value;
      }
      if (this.cursor === 0) {
        const skips = Object.keys(this.epochSkipped).length ? ` (skipped: ${JSON.stringify(this.epochSkipped)})` : '';
        const who = `rank ${this.options.rank ?? 0} of ${this.options.world ?? 1}`;
        throw new DataError(`${this.source.id}: no samples to read in epoch ${this.epoch} for ${who}${skips}`);
      }
      for (const [reason, n] of Object.entries(this.skipped)) this.earlier[reason] = n;
      this.epochSkipped = {};
      this.replayedSkipped = {};
      this.epoch += 1;
      this.cursor = 0;
      this.iterator = undefined;
    }
  }

  /** Opens the epoch's generator and, when resuming, drops the references already emitted. */
  private async startEpoch(): Promise<void> {
    this.iterator = epochRefs(this.source, this.epoch, this.options, this.epochSkipped);
    let dropped = 0;
    for (; dropped < this.replay; dropped++) {
      if ((await this.iterator.next()).done) break;
    }
    if (dropped < this.replay) {
      throw new DataError(
        `${this.source.id}: cannot resume at epoch ${this.epoch}, sample ${this.replay}: ` +
          `this epoch has only ${dropped} samples now. ` +
          `Was the data set (or data.rank/world/shuffleBuffer) changed since the checkpoint?`,
      );
    }
    this.replay = 0;
    this.replayedSkipped = { ...this.epochSkipped };
  }
}
