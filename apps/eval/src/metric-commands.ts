import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ClipScoreDefinition, type Uint8Image, clipScore } from '@matryoshka-ts/metrics';
import { ProgressLine } from '@matryoshka-ts/pipelines';
import { readImages } from './images.js';
import { type NetworkOptions, PROXY_NOTE, openClip, openFeatures } from './networks.js';
import {
  type LabelledStats,
  fidBetween,
  imagesOf,
  referenceStats,
  statsOfImages,
  writeLabelledStats,
} from './statistics.js';
import { ConfigError, DataError } from '@matryoshka-ts/core';

const progress = new ProgressLine(10);
const counter = (what: string) => (done: number) => progress.update(`${what}: ${done} images`);

/**
 * `mdm-eval stats`: feature statistics of a set of images, as pytorch-fid's .npz plus a sidecar naming
 * the features.
 */
export async function statsCommand(options: NetworkOptions & { images: string; out: string }) {
  const extractor = await openFeatures(options);
  const stats = await referenceStats(options.images, extractor, counter('features'));
  progress.done();
  writeLabelledStats(options.out, stats);
  const { mu: _m, sigma: _s, ...label } = stats;
  return { out: options.out, ...label, dim: extractor.dim, ...(extractor.proxy ? { note: PROXY_NOTE } : {}) };
}

/** FID of samples against a reference, with everything needed to compare the number. */
export async function fidReport(
  samples: LabelledStats & { skipped?: Record<string, number> },
  reference: LabelledStats,
  proxy: boolean,
) {
  return {
    fid: fidBetween(samples, reference),
    n: samples.n,
    samples: samples.source,
    reference: { source: reference.source, n: reference.n ?? null, features: reference.features },
    features: samples.features,
    resize: samples.resize,
    proxy,
    ...(samples.skipped && Object.keys(samples.skipped).length ? { skipped: samples.skipped } : {}),
    ...(proxy ? { note: PROXY_NOTE } : {}),
  };
}

/** `mdm-eval fid`: FID of a samples directory (or shards) against a reference (.npz, images, or `bundled`). */
export async function fidCommand(options: NetworkOptions & { samples: string; reference: string }) {
  const extractor = await openFeatures(options);
  const reference = await referenceStats(options.reference, extractor, counter('reference features'));
  const skipped: Record<string, number> = {};
  const samples = await statsOfImages(
    extractor,
    options.samples,
    imagesOf(options.samples, skipped),
    counter('sample features'),
  );
  progress.done();
  return fidReport({ ...samples, skipped }, reference, extractor.proxy);
}

/** Images of a samples directory in name order, with the captions file's lines (line i ↔ image i). */
export async function captionedSamples(
  samples: string,
  captionsFile?: string,
): Promise<{ images: Uint8Image[]; captions: string[] }> {
  const file = captionsFile ?? join(samples, 'captions.txt');
  if (!existsSync(file))
    throw new DataError(
      `no captions: ${file} does not exist (give --captions, one caption per line in image-name order)`,
    );
  const captions = readFileSync(file, 'utf8').replace(/\n$/, '').split('\n');
  const skipped: Record<string, number> = {};
  const images: Uint8Image[] = [];
  for await (const { image } of readImages(samples, { skipped })) images.push(image);
  if (Object.keys(skipped).length)
    throw new DataError(
      `${samples}: unreadable images ${JSON.stringify(skipped)}; captions would no longer line up with images`,
    );
  if (captions.length < images.length)
    throw new DataError(`${file} has ${captions.length} captions for ${images.length} images`);
  return { images, captions: captions.slice(0, images.length) };
}

/** `mdm-eval clip`: CLIP score of samples against their captions. */
export async function clipCommand(
  options: NetworkOptions & { samples: string; captions?: string; definition?: ClipScoreDefinition },
) {
  const model = await openClip({ ...options, clip: options.clip ?? 'proxy' });
  if (!model) throw new ConfigError('--clip none: nothing to score with');
  const { images, captions } = await captionedSamples(options.samples, options.captions);
  const result = await clipScore(model, images, captions, { definition: options.definition, onBatch: counter('CLIP') });
  progress.done();
  return {
    clip_score: result.score,
    definition: result.definition,
    cosine: result.cosine,
    n: result.n,
    samples: options.samples,
    clip: model.id,
    proxy: model.proxy,
    ...(model.proxy ? { note: PROXY_NOTE } : {}),
  };
}
