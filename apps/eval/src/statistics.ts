import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { type ImageDataset, loadEmojiDataset } from '@matryoshka-ts/data';
import {
  type FeatureExtractor,
  type FeatureStats,
  type Uint8Image,
  featureStatsOf,
  frechetDistance,
  readFidStats,
  writeFidStats,
} from '@matryoshka-ts/metrics';
import { isClipSource, readClips } from './clips.js';
import { readImages } from './images.js';
import { DataError } from '@matryoshka-ts/core';

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
