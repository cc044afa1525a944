import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { type ImageDataset, loadEmojiDataset } from '@matryoshka-ts/data';
import {
  type FeatureExtractor,
  FeatureStats,
  type Uint8Image,
  featureStatsOf,
  frechetDistance,
  readFidStats,
  readNpz,
  writeFidStats,
  writeNpz,
} from '@matryoshka-ts/metrics';
import { isClipSource, readClips } from './clips.js';
import { readImages } from './images.js';
import { type Shard, shardLabel, shardOf } from '@matryoshka-ts/pipelines';
import { ConfigError, DataError } from '@matryoshka-ts/core';

/** Feature statistics with what they were computed from and with, so numbers are never compared blindly. */
export interface LabelledStats {
  mu: Float64Array;
  sigma: Float64Array;
  /** Images behind the statistics (undefined for published statistics without a sidecar). */
  n?: number;
  /** What the images were (a path, `bundled:…`). */
  source: string;
  /** The feature extractor's id, or `unknown` for a published .npz without our sidecar. */
  features: string;
  resize?: string;
  proxy?: boolean;
  /** Per-frame statistics of video clips: every frame an image (n counts frames). */
  per_frame?: boolean;
  /** The clips behind per-frame statistics. */
  clips?: number;
}

/** The sidecar written next to a statistics file: `ref.npz` → `ref.npz.json`. */
const sidecarOf = (path: string) => `${path}.json`;

export function writeLabelledStats(path: string, stats: LabelledStats): void {
  writeFidStats(path, stats);
  const { mu: _mu, sigma: _sigma, ...label } = stats;
  const tmp = `${sidecarOf(path)}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(label, null, 2)}\n`);
  renameSync(tmp, sidecarOf(path));
}

/** Reads a pytorch-fid .npz, with our sidecar's labels when it has one. */
export function readLabelledStats(path: string): LabelledStats {
  const { mu, sigma } = readFidStats(path);
  const label = existsSync(sidecarOf(path))
    ? (JSON.parse(readFileSync(sidecarOf(path), 'utf8')) as Omit<LabelledStats, 'mu' | 'sigma'>)
    : { source: path, features: 'unknown' };
  return { ...label, mu: Float64Array.from(mu), sigma: Float64Array.from(sigma) };
}

/** An in-memory data set's images as evaluation images. */
export function datasetImages(dataset: ImageDataset): Uint8Image[] {
  const r = dataset.resolution;
  return Array.from({ length: dataset.size }, (_, i) => ({
    data: dataset.get(i).image,
    width: r,
    height: r,
    channels: 3,
  }));
}

/** The bundled data set the default run trains on (Smileys & Emotion at 64 px), as evaluation images. */
export function bundledImages(): { source: string; images: Uint8Image[] } {
  const dataset = loadEmojiDataset({ resolution: 64, skinTones: false, categories: ['Smileys & Emotion'] });
  return { source: `bundled:${dataset.id}`, images: datasetImages(dataset) };
}

/** Statistics of a set of images through `extractor`. */
export async function statsOfImages(
  extractor: FeatureExtractor,
  source: string,
  images: AsyncIterable<Uint8Image> | Iterable<Uint8Image>,
  onBatch?: (done: number) => void,
): Promise<LabelledStats> {
  const stats: FeatureStats = await featureStatsOf(extractor, images, { onBatch });
  if (stats.count < 2) throw new DataError(`${source}: ${stats.count} image(s) read; statistics need at least 2`);
  const { mu, sigma } = stats.fidStats();
  return {
    mu,
    sigma,
    n: stats.count,
    source,
    features: extractor.id,
    resize: extractor.resize,
    proxy: extractor.proxy,
  };
}

/** Images of a directory / tar shards as a stream of images, with skips counted. */
export async function* imagesOf(source: string, skipped: Record<string, number>): AsyncGenerator<Uint8Image> {
  for await (const { image } of readImages(source, { skipped })) yield image;
}

/** Every frame of the clips of `source` as an image, with skipped clips counted and read clips in `counts`. */
export async function* framesOf(
  source: string,
  skipped: Record<string, number>,
  counts: { clips: number; frames: number } = { clips: 0, frames: 0 },
): AsyncGenerator<Uint8Image> {
  for await (const clip of readClips(source, { skipped })) {
    counts.clips++;
    for (const frame of clip.frames) {
      counts.frames++;
      yield frame;
    }
  }
}

/**
 * Statistics of the images of `source` (a directory / tar shards), or, when `frames` is set or the
 * source holds clips (`isClipSource`), per-frame statistics of its clips, labelled `per_frame`.
 */
export async function sourceStats(
  source: string,
  extractor: FeatureExtractor,
  onBatch?: (done: number) => void,
  options: { frames?: boolean } = {},
): Promise<LabelledStats & { skipped: Record<string, number> }> {
  const skipped: Record<string, number> = {};
  if (options.frames || isClipSource(source)) {
    const counts = { clips: 0, frames: 0 };
    const stats = await statsOfImages(extractor, source, framesOf(source, skipped, counts), onBatch);
    return { ...stats, per_frame: true, clips: counts.clips, skipped };
  }
  const stats = await statsOfImages(extractor, source, imagesOf(source, skipped), onBatch);
  return { ...stats, skipped };
}

/**
 * Reference statistics from `--reference`: a .npz (checked against the extractor through its
 * sidecar), `bundled`, a directory / tar shards of images, or clips (per frame; see `sourceStats`,
 * whose `frames` option reads any directory as clips).
 */
export async function referenceStats(
  reference: string,
  extractor: FeatureExtractor,
  onBatch?: (done: number) => void,
  options: { frames?: boolean } = {},
): Promise<LabelledStats & { skipped?: Record<string, number> }> {
  if (reference.endsWith('.npz')) {
    if (!existsSync(reference)) throw new DataError(`--reference ${reference}: no such file`);
    const stats = readLabelledStats(reference);
    if (stats.features !== 'unknown' && stats.features !== extractor.id) {
      throw new DataError(
        `--reference ${reference} was computed with features ${stats.features}, ` +
          `but these are ${extractor.id}: the distance would mean nothing`,
      );
    }
    if (stats.mu.length !== extractor.dim)
      throw new DataError(
        `--reference ${reference} has d = ${stats.mu.length}, the features have d = ${extractor.dim}`,
      );
    return stats;
  }
  if (reference === 'bundled') {
    const { source, images } = bundledImages();
    return statsOfImages(extractor, source, images, onBatch);
  }
  return sourceStats(reference, extractor, onBatch, options);
}

/** FID between sample and reference statistics, refusing mismatched feature spaces. */
export function fidBetween(samples: LabelledStats, reference: LabelledStats): number {
  if (reference.features !== 'unknown' && samples.features !== reference.features)
    throw new DataError(`samples use features ${samples.features}, the reference ${reference.features}`);
  const fid = frechetDistance(samples.mu, samples.sigma, reference.mu, reference.sigma);
  // Non-finite features (a diverged model's samples) give a non-finite distance: a user's problem, not a bug.
  if (!Number.isFinite(fid))
    throw new DataError(`the Fréchet distance of the samples to the reference came out ${fid} (non-finite features?)`);
  return fid;
}

/**
 * One worker's share of a statistics job (`mdm-eval stats --shard i/n`): the count, mean and
 * centred scatter of its features (`FeatureStats.parts`) in float64, and what they were computed
 * from and with; `mergeStats` folds the n parts into the statistics one process would write.
 */
export interface PartialStats extends Omit<LabelledStats, 'mu' | 'sigma' | 'n'> {
  stats: FeatureStats;
  /** `i/n` */
  shard: string;
}

export function writePartialStats(path: string, part: PartialStats): void {
  const { count, mean, scatter } = part.stats.parts();
  const d = mean.length;
  writeNpz(path, {
    count: { dtype: 'float64', shape: [], data: Float64Array.of(count) },
    mean: { dtype: 'float64', shape: [d], data: mean },
    scatter: { dtype: 'float64', shape: [d, d], data: scatter },
  });
  const { stats: _stats, ...label } = part;
  const tmp = `${sidecarOf(path)}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify({ kind: 'partial', n: count, ...label }, null, 2)}\n`);
  renameSync(tmp, sidecarOf(path));
}

export function readPartialStats(path: string): PartialStats {
  if (!existsSync(sidecarOf(path)))
    throw new DataError(`${path}: no ${sidecarOf(path)} beside it; write parts with mdm-eval stats --shard`);
  const label = JSON.parse(readFileSync(sidecarOf(path), 'utf8')) as Omit<PartialStats, 'stats'> & { kind?: string };
  if (label.kind !== 'partial') throw new DataError(`${path} holds whole statistics, not a part (stats --shard)`);
  const arrays = readNpz(path);
  const get = (name: string) => {
    const a = arrays.get(name);
    if (!a) throw new DataError(`${path} has no '${name}' array`);
    return a.data;
  };
  const stats = FeatureStats.fromParts({ count: get('count')[0], mean: get('mean'), scatter: get('scatter') });
  // `kind` and `n` describe the file; the count is the stats' own.
  const { kind: _kind, n: _n, ...rest } = label as typeof label & { n?: number };
  return { ...rest, stats };
}

/**
 * The statistics of the parts together, equal to one process's up to rounding (Chan's update):
 * refuses parts of different features or sources, and a set of shards that is not exactly
 * 0/n … (n−1)/n.
 */
export function mergeStats(paths: string[]): LabelledStats {
  if (!paths.length) throw new ConfigError('merge needs the part files (mdm-eval stats --shard i/n --out part-i.npz)');
  const parts = paths.map(readPartialStats);
  const first = parts[0];
  const n = Number(first.shard.split('/')[1]);
  const seen = new Set<number>();
  parts.forEach((part, k) => {
    for (const key of ['features', 'source', 'per_frame'] as const)
      if (part[key] !== first[key])
        throw new DataError(
          `${paths[k]} has ${key} ${part[key]}, ${paths[0]} has ${key} ${first[key]}: not parts of one job`,
        );
    const [i, count] = part.shard.split('/').map(Number);
    if (count !== n) throw new DataError(`${paths[k]} is shard ${part.shard}, ${paths[0]} is one of ${n}`);
    if (seen.has(i)) throw new DataError(`shard ${part.shard} is given twice`);
    seen.add(i);
  });
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !seen.has(i));
  if (missing.length) throw new DataError(`shards ${missing.map((i) => `${i}/${n}`).join(', ')} are missing`);
  // In shard order, so the result does not depend on the order the files are named in.
  parts.sort((a, b) => Number(a.shard.split('/')[0]) - Number(b.shard.split('/')[0]));
  const total = parts.reduce((acc, part) => acc.merge(part.stats), new FeatureStats(first.stats.dim));
  if (total.count < 2) throw new DataError(`the parts hold ${total.count} image(s); statistics need at least 2`);
  const { mu, sigma } = total.fidStats();
  const clips = parts.every((p) => p.clips !== undefined) ? parts.reduce((s, p) => s + (p.clips ?? 0), 0) : undefined;
  return {
    mu,
    sigma,
    n: total.count,
    source: first.source,
    features: first.features,
    ...(first.resize !== undefined ? { resize: first.resize } : {}),
    ...(first.proxy !== undefined ? { proxy: first.proxy } : {}),
    ...(first.per_frame ? { per_frame: true, clips } : {}),
  };
}

/**
 * Shard i of n of the statistics of `source` (`bundled`, a directory / tar shards of images, or
 * clips read per frame): the images (or clips) at positions k with k mod n = i of the stream,
 * which every worker reads in the same order.
 */
export async function partialSourceStats(
  source: string,
  extractor: FeatureExtractor,
  shard: Shard,
  onBatch?: (done: number) => void,
  options: { frames?: boolean } = {},
): Promise<PartialStats & { skipped: Record<string, number> }> {
  const skipped: Record<string, number> = {};
  const label = { features: extractor.id, resize: extractor.resize, proxy: extractor.proxy, shard: shardLabel(shard) };
  if (source === 'bundled') {
    const bundled = bundledImages();
    const stats = await featureStatsOf(extractor, shardOf(bundled.images, shard), { onBatch });
    return { ...label, stats, source: bundled.source, skipped };
  }
  if (options.frames || isClipSource(source)) {
    let clips = 0;
    const frames = async function* () {
      for await (const clip of shardOf(readClips(source, { skipped }), shard)) {
        clips++;
        yield* clip.frames;
      }
    };
    const stats = await featureStatsOf(extractor, frames(), { onBatch });
    return { ...label, stats, source, per_frame: true, clips, skipped };
  }
  const stats = await featureStatsOf(extractor, shardOf(imagesOf(source, skipped), shard), { onBatch });
  return { ...label, stats, source, skipped };
}
