import * as tf from '@tensorflow/tfjs-core';
import type { Batch, DataPosition, ImageDataset, ShardedSource, SkipCounts, StreamPosition } from '@matryoshka-ts/data';
import {
  StreamBatcher,
  bundledSource,
  cc12mTsvSource,
  imagenetSource,
  loadEmojiClipDataset,
  loadEmojiDataset,
  nextBatch,
  shardOrder,
  webdatasetSource,
  webvidSource,
} from '@matryoshka-ts/data';
import { ConfigError } from '@matryoshka-ts/core';
import type { TrainConfig } from './config.js';

/** The `data` fields that name a source and its files (config, or data-check's flags). */
export type SourceSpec = Pick<TrainConfig['data'], 'source' | 'path' | 'synsets' | 'classNames' | 'videos' | 'format'> &
  Partial<Pick<TrainConfig['data'], 'skinTones' | 'categories'>>;

/**
 * Opens the source a spec names. Each factory checks its files now (a missing
 * path, a pattern matching nothing, a CSV without the right columns, ffmpeg for video), so a run
 * fails at start with the source's own message rather than hours in.
 */
export async function openSource(spec: SourceSpec): Promise<ShardedSource> {
  const path = () => {
    if (!spec.path) throw new ConfigError(`data source ${spec.source} needs a path (data.path, or --path)`);
    return spec.path;
  };
  switch (spec.source) {
    case 'bundled':
      return bundledSource({ skinTones: spec.skinTones, categories: spec.categories });
    case 'imagenet':
      return imagenetSource({ path: path(), synsets: spec.synsets, classNames: spec.classNames });
    case 'cc12m':
      return spec.format === 'tsv' ? cc12mTsvSource({ index: path() }) : webdatasetSource({ path: path() });
    case 'webvid':
      if (!spec.videos)
        throw new ConfigError('data source webvid needs the folder of downloaded videos (data.videos, or --videos)');
      return webvidSource({ csv: path(), videos: spec.videos });
  }
}

/**
 * The bundled data at `resolution`: the emoji images, or for a video model (`frames` > 1) the
 * bundled clips made from them (each emoji moving, zooming or turning, its caption saying how).
 */
export function bundledDataset(config: Pick<TrainConfig, 'data'>, resolution: number, frames = 1): ImageDataset {
  const { skinTones, categories } = config.data;
  return frames > 1
    ? loadEmojiClipDataset({ resolution, frames, skinTones, categories })
    : loadEmojiDataset({ resolution, skinTones, categories });
}

/** Samples rank·n … (rank+1)·n − 1 of a batch (clips of `frames` rows each); frees the batch. */
function rowsOf(batch: Batch, rank: number, n: number, frames: number): Batch {
  const images = tf.slice(batch.images, [rank * n * frames], [n * frames]);
  batch.images.dispose();
  return {
    images,
    captions: batch.captions.slice(rank * n, (rank + 1) * n),
    labels: batch.labels.slice(rank * n, (rank + 1) * n),
  };
}

/** Captions and labels for sample grids: the first distinct ones, in a fixed order. */
export interface Preview {
  captions: string[];
  labels: number[];
}

/** What the trainer reads batches from: the bundled data set in memory, or a streamed source. */
export interface TrainingData {
  /** One line for the log. */
  readonly description: string;
  readonly classNames: readonly string[];
  /** The next batch at `position`, which is advanced in place (as `nextBatch` does). */
  next(batchSize: number, position: DataPosition): Promise<Batch>;
  preview(n: number): Promise<Preview>;
  /** Every distinct caption of the data (from references only: no image is read), for a frozen encoder's cache. */
  captions(): Promise<string[]>;
  /** Decode speed and skipped inputs of a streamed source (undefined for the bundled data). */
  stats(): { imagesPerSecond: number; skipped: SkipCounts } | undefined;
  close(): Promise<void>;
}

/** This process's place among the ranks of a data-parallel run. */
export interface DataPart {
  rank: number;
  world: number;
}

/**
 * The training data of a config at `resolution` (the model's top level), in clips of `frames` for
 * a video model (each sample's frames adjacent rows of the batch). 'bundled' keeps the
 * in-memory emoji data set and `nextBatch`, so the default run is unchanged bit for bit; the other
 * sources stream through a `StreamBatcher` (shard + buffer shuffling, worker decoding, skips).
 *
 * For rank r of a data-parallel run (`part`), a batch is this rank's part: of the bundled data,
 * rows r·B … (r+1)·B − 1 of the whole batch of world·B at the shared position (so the ranks
 * together see what one process at world·B sees); of a streamed source, B samples of this rank's
 * own part of the shards, at its own position.
 */
export async function openTrainingData(
  config: TrainConfig,
  resolution: number,
  frames = 1,
  part: DataPart = { rank: 0, world: 1 },
): Promise<TrainingData> {
  const data = part.world > 1 ? { ...config.data, rank: part.rank, world: part.world } : config.data;
  if (data.source === 'bundled') {
    const dataset = bundledDataset(config, resolution, frames);
    const skipped = Object.values(dataset.skipped).reduce((a, b) => a + b, 0);
    return {
      description:
        `${dataset.id}, ${dataset.size} ${frames > 1 ? `clips of ${frames} frames` : 'images'}` +
        `${skipped ? `, ${skipped} skipped ${JSON.stringify(dataset.skipped)}` : ''}`,
      classNames: dataset.classNames,
      next: async (batchSize, position) =>
        part.world > 1
          ? rowsOf(nextBatch(dataset, batchSize * part.world, config.seed, position), part.rank, batchSize, frames)
          : nextBatch(dataset, batchSize, config.seed, position),
      preview: async (n) => previewConditions(dataset, n),
      captions: async () => [...new Set(Array.from({ length: dataset.size }, (_, i) => dataset.get(i).caption))],
      stats: () => undefined,
      close: async () => {},
    };
  }
  const source = await openSource(data);
  // Fails now when there are more processes than shards, not at the first batch.
  shardOrder(source.shards.length, config.seed, 0, data.rank, data.world);
  let batcher: StreamBatcher | undefined;
  return {
    description:
      `${source.id}, ${source.shards.length} shards` +
      `${data.world > 1 ? ` (rank ${data.rank} of ${data.world})` : ''}, decoded at ${resolution} px` +
      `${frames > 1 ? ` in clips of ${frames} frames` : ''}`,
    classNames: source.classNames,
    async next(batchSize, position) {
      // Created at the first batch, from the position the run starts (or resumes) at.
      batcher ??= new StreamBatcher(source, {
        seed: config.seed,
        size: resolution,
        position: { ...position },
        rank: data.rank,
        world: data.world,
        shuffleBuffer: data.shuffleBuffer,
        workers: data.workers,
        flip: data.flip ?? source.kind === 'webvid',
        // A video model takes whole clips of its frame count; an image model each frame.
        ...(frames > 1 ? { clips: true, frames } : {}),
      });
      const batch = await batcher.next(batchSize);
      const now: StreamPosition = batcher.position;
      Object.assign(position, now);
      if (now.frame === undefined) delete (position as StreamPosition).frame;
      return batch;
    },
    preview: (n) => previewFromSource(source, n),
    async captions() {
      const all = new Set<string>();
      for (let s = 0; s < source.shards.length; s++) for await (const ref of source.scan(s, {})) all.add(ref.caption);
      return [...all];
    },
    stats: () => (batcher ? { imagesPerSecond: batcher.imagesPerSecond, skipped: batcher.skipped } : undefined),
    close: async () => batcher?.close(),
  };
}

/** Captions (or labels) for sample grids: the first distinct ones of the data set, in a fixed order. */
export function previewConditions(dataset: ImageDataset, n: number): Preview {
  const captions: string[] = [];
  const labels: number[] = [];
  const seen = new Set<string>();
  const stride = Math.max(1, Math.floor(dataset.size / n));
  for (let i = 0; captions.length < n && i < dataset.size * 2; i += stride) {
    const e = dataset.get(i % dataset.size);
    if (seen.has(e.caption)) continue;
    seen.add(e.caption);
    captions.push(e.caption);
    labels.push(e.label);
  }
  return { captions, labels };
}

/**
 * The first `n` distinct conditions of a source (labels where it has them, else captions), from at
 * most `n` references of each shard in stored order: no image is read, and the choice does not
 * depend on the training order, so a resumed run draws its grids with the same conditions.
 */
async function previewFromSource(source: ShardedSource, n: number): Promise<Preview> {
  const captions: string[] = [];
  const labels: number[] = [];
  const seen = new Set<string>();
  for (let s = 0; s < source.shards.length && captions.length < n; s++) {
    let taken = 0;
    for await (const ref of source.scan(s, {})) {
      const key = ref.label >= 0 ? `label ${ref.label}` : `caption ${ref.caption}`;
      if (!seen.has(key)) {
        seen.add(key);
        captions.push(ref.caption);
        labels.push(ref.label);
      }
      if (captions.length >= n || ++taken >= n) break;
    }
  }
  return { captions, labels };
}
