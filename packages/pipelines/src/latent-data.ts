import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type AutoencoderKL, disposePosterior, loadAutoencoder } from '@matryoshka-ts/autoencoder';
import {
  type LatentCache,
  type LatentCacheOptions,
  type LatentEncodeFn,
  fillLatentCache,
  latentPartRange,
  mergeLatentCacheParts,
  openLatentCache,
} from '@matryoshka-ts/baselines';
import { ConfigError, DataError, Rng } from '@matryoshka-ts/core';
import { type DataPosition, type ImageDataset, epochOrder, loadEmojiDataset } from '@matryoshka-ts/data';
import type { TrainConfig } from './config.js';
import { type LevelSamples, levelSamplesTensor } from './generate.js';
import { previewConditions, type TrainingData } from './data-source.js';
import { type Shard, shardLabel } from './shard.js';
import { type CacheFillSummary, mergeProblems } from './cache-summary.js';

type LatentStage = Extract<NonNullable<TrainConfig['stage']>, { kind: 'latent' }>;

/** The latent stage of a config (its paths resolved against the stage's run directory). */
export function latentStageOf(config: TrainConfig, stageDir: string): LatentStage {
  const stage = config.stage;
  if (stage?.kind !== 'latent') throw new ConfigError('not a latent diffusion stage');
  const at = (p: string) => (isAbsolute(p) ? p : join(stageDir, p));
  return { ...stage, autoencoder: at(stage.autoencoder), cache: at(stage.cache) };
}

/** The data set a latent run encodes: the bundled images at the autoencoder's input size. */
export function latentDataset(config: TrainConfig, imageResolution: number): ImageDataset {
  if (config.data.source !== 'bundled')
    throw new ConfigError(
      'config: data.source: a latent run encodes the bundled data set into its cache; ' +
        `${config.data.source} is not supported yet`,
    );
  return loadEmojiDataset({
    resolution: imageResolution,
    skinTones: config.data.skinTones,
    categories: config.data.categories,
  });
}

/**
 * The cache key: the autoencoder's config and every weight, and which images (data set, size,
 * resolution). Another autoencoder or data set gets another cache directory, never stale latents.
 */
export function latentCacheKey(autoencoder: AutoencoderKL, dataset: ImageDataset): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(autoencoder.config));
  const weights = autoencoder.getWeights();
  for (const name of [...weights.keys()].sort()) {
    const w = weights.get(name)!;
    hash.update(name);
    hash.update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  }
  hash.update(`${dataset.id}|${dataset.size}|${dataset.resolution}`);
  return hash.digest('hex').slice(0, 32);
}

/** Images [start, start + n) of the data set in [−1, 1], NHWC. */
function imagesOf(dataset: ImageDataset, indices: number[]): tf.Tensor4D {
  const r = dataset.resolution;
  const pixels = new Float32Array(indices.length * r * r * 3);
  indices.forEach((index, b) => {
    const image = dataset.get(index).image;
    for (let i = 0; i < image.length; i++) pixels[b * r * r * 3 + i] = image[i] / 127.5 - 1;
  });
  return tf.tensor4d(pixels, [indices.length, r, r, 3]);
}

/** The posteriors of samples [start, start + n): the images encoded, every tensor disposed. */
function latentEncoder(autoencoder: AutoencoderKL, dataset: ImageDataset): LatentEncodeFn {
  return (start, n) => {
    const x = imagesOf(
      dataset,
      Array.from({ length: n }, (_, k) => start + k),
    );
    const posterior = autoencoder.encode(x);
    const out = {
      mean: posterior.mean.dataSync() as Float32Array,
      logvar: posterior.logvar.dataSync() as Float32Array,
    };
    disposePosterior(posterior);
    x.dispose();
    return out;
  };
}

/** Where the cache of `dataset` under `autoencoder` lives and what it holds. */
function latentCacheOptions(autoencoder: AutoencoderKL, dataset: ImageDataset): LatentCacheOptions {
  const f = dataset.resolution / autoencoder.factor;
  return {
    key: latentCacheKey(autoencoder, dataset),
    count: dataset.size,
    shape: [f, f, autoencoder.config.embedDim],
    info: { dataset: dataset.id, resolution: dataset.resolution },
  };
}

/**
 * Opens the cache of the data set's latents and fills it: first from the parts a sharded fill
 * left next to it (`mdm-train cache --shard i/n`, merged in sample order), then by encoding what
 * is still missing (resuming where a previous fill stopped). A missing, unfinished or foreign part
 * is logged, and its samples encoded here.
 */
export async function fillLatentCacheWithParts(
  autoencoder: AutoencoderKL,
  dataset: ImageDataset,
  root: string,
  log: (line: string) => void,
  onProgress?: (done: number, total: number) => void,
): Promise<{ cache: LatentCache; summary: CacheFillSummary }> {
  const started = performance.now();
  const cache = openLatentCache(root, latentCacheOptions(autoencoder, dataset));
  try {
    for (const warning of cache.warnings ?? []) log(`latent cache: ${warning}`);
    const before = cache.complete;
    const encode = latentEncoder(autoencoder, dataset);
    const report = await mergeLatentCacheParts(cache, { encode, batchSize: 16, onProgress });
    if (report.merged.length)
      log(`latent cache: merged parts ${report.merged.join(', ')} (${report.copied} samples) into ${cache.dataPath}`);
    for (const line of mergeProblems('latent cache', report, 'its samples are encoded here')) log(line);
    let encoded = report.encoded;
    if (!cache.done) {
      log(`latent cache: encoding ${dataset.size - cache.complete} of ${dataset.size} images into ${root}`);
      encoded += await fillLatentCache(cache, encode, { batchSize: 16, onProgress });
    }
    const summary: CacheFillSummary = {
      cache: 'latents',
      path: cache.dataPath,
      total: dataset.size,
      encoded,
      present: before + report.copied,
      merged: report.merged,
      missing: report.missing,
      foreign: report.foreign,
      incomplete: report.incomplete,
      seconds: (performance.now() - started) / 1000,
    };
    return { cache, summary };
  } catch (error) {
    cache.close();
    throw error;
  }
}

/**
 * Opens (and fills, from parts of a sharded fill and by encoding the rest, resuming where a
 * previous fill stopped) the cache of the data set's latents: the posterior mean and
 * log-variance of every image.
 */
export async function prepareLatentCache(
  autoencoder: AutoencoderKL,
  dataset: ImageDataset,
  root: string,
  log: (line: string) => void,
  onProgress?: (done: number, total: number) => void,
): Promise<LatentCache> {
  return (await fillLatentCacheWithParts(autoencoder, dataset, root, log, onProgress)).cache;
}

/**
 * Fills shard i of n's part of the latent cache: samples [⌊i·N/n⌋, ⌊(i+1)·N/n⌋) into its own
 * files next to the cache (`part-<i>-of-<n>.{json,bin}`), resuming a part filled before. When
 * the cache itself already holds those samples (the parts were merged), nothing is encoded.
 */
export async function fillLatentCacheShard(
  autoencoder: AutoencoderKL,
  dataset: ImageDataset,
  root: string,
  shard: Shard,
  log: (line: string) => void,
  onProgress?: (done: number, total: number) => void,
): Promise<CacheFillSummary> {
  const started = performance.now();
  const options = latentCacheOptions(autoencoder, dataset);
  const range = latentPartRange(dataset.size, shard.index, shard.count);
  const total = range.to - range.from;
  const summary = (path: string, encoded: number, present: number): CacheFillSummary => ({
    cache: 'latents',
    shard: shardLabel(shard),
    path,
    total,
    encoded,
    present,
    seconds: (performance.now() - started) / 1000,
  });
  // Read-only: the cache may be being merged into by another process; nothing here may truncate it.
  if (existsSync(join(root, options.key, 'meta.json'))) {
    const merged = openLatentCache(root, { ...options, readOnly: true });
    merged.close();
    if (merged.complete >= range.to) return summary(merged.dataPath, 0, total);
  }
  const part = openLatentCache(root, { ...options, part: range });
  try {
    for (const warning of part.warnings) log(`latent cache: ${warning}`);
    const present = part.complete;
    if (!part.done)
      log(
        `latent cache: shard ${shardLabel(shard)}: encoding images ${range.from + present} to ${range.to - 1} ` +
          `into ${part.dataPath}`,
      );
    const encoded = await fillLatentCache(part, latentEncoder(autoencoder, dataset), { batchSize: 16, onProgress });
    return summary(part.dataPath, encoded, present);
  } finally {
    part.close();
  }
}

/** z = mean + exp(logvar / 2)·ε, scaled: the latents a batch trains on (a posterior sample, as LDM's). */
function sampleLatents(cache: LatentCache, indices: number[], scale: number, rng: Rng): tf.Tensor4D {
  const [h, w, c] = cache.shape;
  const { mean, logvar } = cache.readBatch(indices);
  const out = new Float32Array(mean.length);
  for (let i = 0; i < mean.length; i++) out[i] = (mean[i] + Math.exp(0.5 * logvar[i]) * rng.normal()) * scale;
  return tf.tensor4d(out, [indices.length, h, w, c]);
}

/** 1/std of the first training batch's latents (LDM's `scale_by_std`), so the diffusion sees unit variance. */
export function measureScaleFactor(cache: LatentCache, config: TrainConfig, batchSize: number): number {
  const order = epochOrder(cache.count, config.seed, 0);
  const indices = Array.from(order.slice(0, Math.min(batchSize, cache.count)));
  const z = sampleLatents(cache, indices, 1, new Rng(config.seed + 17));
  const data = z.dataSync();
  z.dispose();
  let mean = 0;
  for (const v of data) mean += v;
  mean /= data.length;
  let variance = 0;
  for (const v of data) variance += (v - mean) ** 2;
  // Unbiased, as torch.std.
  const std = Math.sqrt(variance / (data.length - 1));
  if (!(std > 0)) throw new DataError(`the autoencoder's latents have standard deviation ${std}: cannot scale them`);
  return 1 / std;
}

/**
 * The training data of a latent stage: the cached latents (a fresh posterior sample per batch,
 * from a generator seeded by the batch's position so a resumed run draws the same), in the same
 * seeded order as the bundled images, with their captions and labels.
 */
export async function openLatentTrainingData(config: TrainConfig, stageDir: string): Promise<TrainingData> {
  const stage = latentStageOf(config, stageDir);
  const autoencoder = loadAutoencoder(stage.autoencoder);
  const dataset = latentDataset(config, stage.imageResolution);
  let cache: LatentCache;
  try {
    cache = await prepareLatentCache(autoencoder, dataset, stage.cache, (line) => process.stderr.write(`${line}\n`));
  } finally {
    autoencoder.dispose();
  }
  return {
    description:
      `${dataset.id}, ${dataset.size} images as ${cache.shape.join('×')} latents ` +
      `(scale ${stage.scaleFactor.toPrecision(4)})`,
    classNames: dataset.classNames,
    async next(batchSize: number, position: DataPosition) {
      const rng = new Rng((config.seed * 1_000_003 + position.epoch * 7919 + position.cursor * 31 + 5) >>> 0);
      let order = epochOrder(dataset.size, config.seed, position.epoch);
      const indices: number[] = [];
      const captions: string[] = [];
      const labels: number[] = [];
      for (let b = 0; b < batchSize; b++) {
        if (position.cursor >= dataset.size) {
          position.epoch += 1;
          position.cursor = 0;
          order = epochOrder(dataset.size, config.seed, position.epoch);
        }
        const index = order[position.cursor++];
        const e = dataset.get(index);
        indices.push(index);
        captions.push(e.caption);
        labels.push(e.label);
      }
      return { images: sampleLatents(cache, indices, stage.scaleFactor, rng), captions, labels };
    },
    preview: async (n) => previewConditions(dataset, n),
    captions: async () => [...new Set(Array.from({ length: dataset.size }, (_, i) => dataset.get(i).caption))],
    stats: () => undefined,
    close: async () => cache.close(),
  };
}

/** Decodes sampled latents (divided by the scale factor first) into images in [−1, 1]; an asynchronous read. */
export async function decodeLatents(
  autoencoder: AutoencoderKL,
  latents: LevelSamples,
  scaleFactor: number,
): Promise<LevelSamples> {
  const { images } = latents;
  const z = tf.tidy(() => tf.div(levelSamplesTensor(latents), scaleFactor) as tf.Tensor4D);
  const decoded = autoencoder.decode(z);
  const data = (await decoded.data()) as Float32Array;
  const r = decoded.shape[1];
  const c = decoded.shape[3];
  tf.dispose([z, decoded]);
  const size = r * r * c;
  return {
    resolution: r,
    channels: c,
    frames: 1,
    images: images.map((_, k) => data.slice(k * size, (k + 1) * size)),
  };
}
