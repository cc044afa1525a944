import { DataError } from '@matryoshka-ts/core';
import * as tf from '@tensorflow/tfjs-core';
import type { Batch, DataPosition } from '../dataset.js';
import { type SampleRef, type ShardedSource, type SkipCounts, countSkip } from '../sources/source.js';
import { DecodePool } from './decode-pool.js';
import type { DecodeOutcome, DecodeTask } from './decode-task.js';
import { SampleStream, type SampleStreamOptions } from './sample-stream.js';
import { FLIP, derivedRng } from './seeds.js';

/**
 * A stream position that can also point inside a video clip: `frame` images of the clip at
 * `cursor − 1` were already used (a batch ended in the middle of the clip). Plain `DataPosition`
 * otherwise, so it is stored in checkpoints as is.
 */
export interface StreamPosition extends DataPosition {
  frame?: number;
}

export interface StreamBatcherOptions extends Omit<SampleStreamOptions, 'position'> {
  /** Output side in pixels. */
  size: number;
  position?: StreamPosition;
  /** Mirror a random half of the samples left–right (seeded per sample; default false). */
  flip?: boolean;
  /** Clip length and frame stride for video sources (default 16 frames, every 4th). */
  frames?: number;
  /**
   * Batches of whole clips for a video model: each sample is `frames` adjacent rows
   * ([batchSize·frames, size, size, 3]) with one caption; a sample that is not a clip of `frames`
   * frames (an image) is skipped and counted. Default false: every frame is an image of the batch.
   */
  clips?: boolean;
  stride?: number;
  ffmpeg?: string;
  /** Decode threads and read-ahead (see DecodePoolOptions), or a pool to share. */
  workers?: number;
  prefetch?: number;
  pool?: DecodePool;
}

/** A reference with the stream position after it and its flip, as queued for decoding. */
interface Queued {
  ref: SampleRef;
  after: DataPosition;
  flip: boolean;
  /** Entries the scan skipped just before this reference (counted when it is consumed). */
  scanSkipped: SkipCounts;
}

/** A decoded clip (or image) whose images are being handed out. */
interface Current {
  ref: SampleRef;
  pixels: Uint8Array;
  frames: number;
  used: number;
}

/**
 * Training batches from a sharded source: references in the stream's seeded, rank-partitioned
 * order, decoded in worker threads ahead of the training loop, packed into [B, size, size, 3]
 * tensors in [−1, 1] as (v / 127.5) − 1 — the bundled data set's `nextBatch` convention.
 *
 * Samples that fail to decode are counted in `skipped` by reason and the batch is filled from the
 * samples after them, so a run goes on. For a video source, either each sample is a whole clip
 * (`clips`, for the video model: its frames adjacent rows), or each frame of a clip is one image of
 * the batch (an image model trained on video frames); then a batch may end in the middle of a
 * clip: `position.frame` records where, so a resumed run continues at the next frame.
 */
export class StreamBatcher {
  private readonly stream: SampleStream;
  private readonly pool: DecodePool;
  private readonly ownsPool: boolean;
  private readonly results: AsyncGenerator<{ item: Queued; outcome: DecodeOutcome }>;
  private current: Current | undefined;
  /** Skips up to the consumed position: the scan's, and failed decodes. */
  private readonly counted: SkipCounts = {};
  private consumed: DataPosition;
  /** Images of the first decoded clip to pass over (a resume inside a clip). */
  private dropFrames: number;
  private images = 0;

  constructor(
    readonly source: ShardedSource,
    private readonly options: StreamBatcherOptions,
  ) {
    const start = options.position ?? { epoch: 0, cursor: 0 };
    const inClip = (start.frame ?? 0) > 0;
    if (inClip && start.cursor < 1)
      throw new Error(`stream batcher: bad position ${JSON.stringify(start)} (a frame needs a clip before the cursor)`);
    // Inside a clip: re-read that clip (one reference back) and pass over its used frames.
    const streamStart = { epoch: start.epoch, cursor: start.cursor - (inClip ? 1 : 0) };
    this.stream = new SampleStream(source, { ...options, position: streamStart });
    this.consumed = { epoch: start.epoch, cursor: start.cursor };
    this.dropFrames = start.frame ?? 0;
    this.ownsPool = !options.pool;
    this.pool = options.pool ?? new DecodePool({ workers: options.workers, prefetch: options.prefetch });
    this.results = this.pool.decodeInOrder(
      () => this.queueNext(),
      (item) => this.task(item),
    );
  }

  /** The position after the last image handed out in a batch; a batcher created from it continues exactly there. */
  get position(): StreamPosition {
    const frame = this.current ? this.current.used : 0;
    return frame > 0 ? { ...this.consumed, frame } : { ...this.consumed };
  }

  /**
   * Skipped inputs by reason, up to `position`: bad entries found while scanning plus samples that
   * failed to decode. (Entries scanned or decoded ahead are counted when the batches reach them.)
   */
  get skipped(): SkipCounts {
    return { ...this.counted };
  }

  /** Images handed out in batches so far. */
  get imagesRead(): number {
    return this.images;
  }

  /** What the decode side delivers: images per second of decoding (see DecodePool.imagesPerSecond). */
  get imagesPerSecond(): number {
    return this.pool.imagesPerSecond;
  }

  /**
   * The next `batchSize` images with their captions and labels; the caller disposes `images`. Await one call before
   * the next.
   */
  async next(batchSize: number): Promise<Batch> {
    if (this.options.clips) return this.nextClips(batchSize);
    const r = this.options.size;
    const imageSize = r * r * 3;
    const pixels = new Float32Array(batchSize * imageSize);
    const captions: string[] = [];
    const labels: number[] = [];
    for (let b = 0; b < batchSize; b++) {
      const clip = this.current ?? (await this.nextDecoded());
      const from = clip.pixels.subarray(clip.used * imageSize, (clip.used + 1) * imageSize);
      const offset = b * imageSize;
      for (let i = 0; i < imageSize; i++) pixels[offset + i] = from[i] / 127.5 - 1;
      captions.push(clip.ref.caption);
      labels.push(clip.ref.label);
      clip.used += 1;
      this.current = clip.used < clip.frames ? clip : undefined;
    }
    this.images += batchSize;
    return { images: tf.tensor4d(pixels, [batchSize, r, r, 3]), captions, labels };
  }

  /** `batchSize` whole clips: [batchSize·frames, r, r, 3], sample b's frames in rows b·frames …. */
  private async nextClips(batchSize: number): Promise<Batch> {
    const r = this.options.size;
    const frames = this.options.frames ?? 16;
    const clipSize = frames * r * r * 3;
    const pixels = new Float32Array(batchSize * clipSize);
    const captions: string[] = [];
    const labels: number[] = [];
    for (let b = 0; b < batchSize; ) {
      const clip = await this.nextDecoded();
      if (clip.frames !== frames) {
        countSkip(this.counted, 'not a clip');
        continue;
      }
      const offset = b * clipSize;
      for (let i = 0; i < clipSize; i++) pixels[offset + i] = clip.pixels[i] / 127.5 - 1;
      captions.push(clip.ref.caption);
      labels.push(clip.ref.label);
      b += 1;
    }
    this.images += batchSize * frames;
    return { images: tf.tensor4d(pixels, [batchSize * frames, r, r, 3]), captions, labels };
  }

  /** Stops reading and decoding (terminates the workers unless the pool was given). */
  async close(): Promise<void> {
    await this.results.return(undefined);
    await this.stream.close();
    if (this.ownsPool) await this.pool.close();
  }

  /** The next sample that decoded, counting the ones that did not. */
  private async nextDecoded(): Promise<Current> {
    for (;;) {
      const step = await this.results.next();
      if (step.done) throw new Error('stream batcher: the stream ended'); // streams are endless; only close() ends them
      const { item, outcome } = step.value;
      this.consumed = item.after;
      for (const [reason, n] of Object.entries(item.scanSkipped)) countSkip(this.counted, reason, n);
      // Only the first sample after a resume inside a clip is that clip.
      const drop = this.dropFrames;
      this.dropFrames = 0;
      if (!outcome.ok) {
        if (outcome.fatal) {
          // ffmpeg missing is the user's to fix; a crashed or closed decoder is not.
          const message = `${this.source.id}: ${outcome.message}`;
          throw outcome.reason === 'ffmpeg not found' ? new DataError(message) : new Error(message);
        }
        countSkip(this.counted, outcome.reason);
        continue;
      }
      return {
        ref: item.ref,
        pixels: outcome.pixels,
        frames: outcome.frames,
        used: Math.min(drop, outcome.frames - 1),
      };
    }
  }

  /** The next reference, tagged with the position after it and its (seeded, resumable) flip. */
  private async queueNext(): Promise<Queued> {
    const ref = await this.stream.next();
    const after = this.stream.position;
    const flip = Boolean(this.options.flip) && flipFor(this.options.seed, this.options.rank ?? 0, after);
    return { ref, after, flip, scanSkipped: this.stream.takeSkipped() };
  }

  private task(item: Queued): DecodeTask {
    return {
      image: item.ref.image,
      video: Boolean(item.ref.video),
      size: this.options.size,
      flip: item.flip,
      frames: this.options.frames ?? 16,
      stride: this.options.stride ?? 4,
      ffmpeg: this.options.ffmpeg,
    };
  }
}

/**
 * Whether the sample before `after` is mirrored: a coin drawn from (seed, rank, epoch, index)
 * alone, on the main thread, so a resumed run draws the same coins without replaying any.
 */
export function flipFor(seed: number, rank: number, after: DataPosition): boolean {
  return derivedRng(seed, FLIP, rank, after.epoch, after.cursor - 1).uniform() < 0.5;
}
