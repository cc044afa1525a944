import { ConfigError, DataError } from '@matryoshka-ts/core';
import { DecodePool, type SampleRef, type ShardedSource, type SkipCounts, countSkip } from '@matryoshka-ts/data';
import { type SourceSpec, openSource } from './data-source.js';
import { ProgressLine } from './progress.js';
import { type Shard, shardLabel, shardRange } from './shard.js';

export interface DataCheckOptions extends SourceSpec {
  /** Decode size in pixels (default 64). */
  size?: number;
  /** Stop after this many samples (default: the whole source). */
  limit?: number;
  workers?: number;
  /** Clip length and stride for video sources (default 16, 4: as in training). */
  frames?: number;
  stride?: number;
  /** Check only shard i of n: the source's shards (files, synset folders) ⌊i·S/n⌋ … ⌊(i+1)·S/n⌋ − 1. */
  shard?: Shard;
}

/** What `mdm-train data-check` prints: samples read, skips by reason, decoded images per second. */
export interface DataCheckResult {
  read: number;
  skipped: SkipCounts;
  images_per_s: number;
  /** With `shard`: which one (`i/n`), and the source shards it read ([from, to) of `of`). */
  shard?: string;
  source_shards?: { from: number; to: number; of: number };
}

/**
 * Reads a whole source once through the training pipeline — every shard scanned, every sample read
 * and decoded in the worker pool — without training, so a data set can be validated before a long
 * run. One pass in stored order: no shuffling is needed to see every sample. `read` counts samples
 * that decoded (images, or video clips); `images_per_s` counts decoded images (a clip's frames each)
 * per second of wall time, from the first decoded sample on (worker start-up excluded). The source
 * is opened first, so a missing path fails at once with the source's message.
 */
export async function dataCheck(options: DataCheckOptions): Promise<DataCheckResult> {
  const size = options.size ?? 64;
  if (!(Number.isInteger(size) && size > 0))
    throw new ConfigError(`data-check: --size must be a positive integer, got ${size}`);
  const source = await openSource(options);
  const skipped: SkipCounts = {};
  const range = shardRange(source.shards.length, options.shard ?? { index: 0, count: 1 });
  const refs = storedOrder(source, skipped, range);
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  let listed = 0;
  const nextRef = async () => {
    if (listed >= limit) return undefined;
    const step = await refs.next();
    if (step.done) return undefined;
    listed += 1;
    return step.value;
  };
  const pool = new DecodePool({ workers: options.workers });
  const progress = new ProgressLine();
  const opened = performance.now();
  // The rate is measured from the first answer on: worker start-up (a second or two) is not decoding.
  let started = Number.NaN;
  let imagesBefore = 0;
  let read = 0;
  let images = 0;
  const rate = () => ((images - imagesBefore) * 1000) / (performance.now() - started);
  try {
    const decoded = pool.decodeInOrder(nextRef, (ref) => ({
      image: ref.image,
      video: Boolean(ref.video),
      size,
      flip: false,
      frames: options.frames ?? 16,
      stride: options.stride ?? 4,
    }));
    for await (const { outcome } of decoded) {
      if (Number.isNaN(started)) {
        started = performance.now();
        imagesBefore = outcome.ok ? outcome.frames : 0;
      }
      if (!outcome.ok) {
        if (outcome.fatal) throw new DataError(`${source.id}: ${outcome.message}`);
        countSkip(skipped, outcome.reason);
      } else {
        read += 1;
        images += outcome.frames;
      }
      if (performance.now() - opened > 5000)
        progress.update(`data-check ${source.id}: ${read} read, ${total(skipped)} skipped, ${rate().toFixed(1)} img/s`);
    }
  } finally {
    await refs.return(undefined);
    await pool.close();
    progress.done();
  }
  const perSecond = images > imagesBefore ? rate() : 0;
  return {
    read,
    skipped,
    images_per_s: Number(perSecond.toFixed(2)),
    ...(options.shard
      ? { shard: shardLabel(options.shard), source_shards: { ...range, of: source.shards.length } }
      : {}),
  };
}

/** Every reference of the shards [from, to), shards in order, each in stored order. */
async function* storedOrder(
  source: ShardedSource,
  skipped: SkipCounts,
  range: { from: number; to: number },
): AsyncGenerator<SampleRef> {
  for (let s = range.from; s < range.to; s++) yield* source.scan(s, skipped);
}

const total = (skipped: SkipCounts) => Object.values(skipped).reduce((a, b) => a + b, 0);
