import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ClipModel,
  type ClipScoreDefinition,
  type Uint8Image,
  clipScore,
  clipScoreOfCosine,
} from '@matryoshka-ts/metrics';
import { ProgressLine, type Shard } from '@matryoshka-ts/pipelines';
import { type Clip, isClipSource, readClips } from './clips.js';
import { readImages } from './images.js';
import { type NetworkOptions, PROXY_NOTE, openClip, openFeatures } from './networks.js';
import {
  type LabelledStats,
  fidBetween,
  mergeStats,
  partialSourceStats,
  referenceStats,
  sourceStats,
  writeLabelledStats,
  writePartialStats,
} from './statistics.js';
import { ConfigError, DataError } from '@matryoshka-ts/core';

const progress = new ProgressLine(10);
const counter = (what: string) => (done: number) => progress.update(`${what}: ${done} images`);

/**
 * `mdm-eval stats`: feature statistics of a set of images, as pytorch-fid's .npz plus a sidecar naming
 * the features. Clips (`frames`, or a source that holds clips) give per-frame statistics.
 */
export async function statsCommand(
  options: NetworkOptions & { images: string; out: string; frames?: boolean; shard?: Shard },
) {
  const extractor = await openFeatures(options);
  if (options.shard) {
    // One worker's part: merged into the whole statistics by `mdm-eval merge`.
    const part = await partialSourceStats(options.images, extractor, options.shard, counter('features'), {
      frames: options.frames,
    });
    progress.done();
    writePartialStats(options.out, part);
    const { stats, skipped, ...label } = part;
    return {
      out: options.out,
      ...label,
      n: stats.count,
      dim: extractor.dim,
      ...(Object.keys(skipped).length ? { skipped } : {}),
      ...(extractor.proxy ? { note: PROXY_NOTE } : {}),
    };
  }
  const stats = await referenceStats(options.images, extractor, counter('features'), { frames: options.frames });
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
    ...(samples.per_frame ? { per_frame: true, clips: samples.clips, frames: samples.n } : {}),
    samples: samples.source,
    reference: {
      source: reference.source,
      n: reference.n ?? null,
      features: reference.features,
      ...(reference.per_frame ? { per_frame: true, clips: reference.clips ?? null } : {}),
    },
    features: samples.features,
    resize: samples.resize,
    proxy,
    ...(samples.skipped && Object.keys(samples.skipped).length ? { skipped: samples.skipped } : {}),
    ...(proxy ? { note: PROXY_NOTE } : {}),
  };
}

/**
 * `mdm-eval fid`: FID of a samples directory (or shards) against a reference (.npz, images, or
 * `bundled`). Video samples (`frames`, or a directory that holds clips) give per-frame FID: every
 * frame is an image; the reference may be images, clips (read per frame too) or statistics.
 */
export async function fidCommand(options: NetworkOptions & { samples: string; reference: string; frames?: boolean }) {
  const extractor = await openFeatures(options);
  const reference = await referenceStats(options.reference, extractor, counter('reference features'));
  const samples = await sourceStats(options.samples, extractor, counter('sample features'), {
    frames: options.frames,
  });
  progress.done();
  return fidReport(samples, reference, extractor.proxy);
}

/** The captions file's lines: `captionsFile`, or `<samples>/captions.txt` as `generate` writes it. */
function readCaptions(
  samples: string,
  captionsFile: string | undefined,
  order: string,
): { file: string; captions: string[] } {
  const file = captionsFile ?? join(samples, 'captions.txt');
  if (!existsSync(file))
    throw new DataError(
      `no captions: ${file} does not exist (give --captions, one caption per line in ${order} order)`,
    );
  return { file, captions: readFileSync(file, 'utf8').replace(/\n$/, '').split('\n') };
}

/** Clips of a samples directory in id order, with the captions file's lines (line i ↔ clip i). */
export async function captionedClips(
  samples: string,
  captionsFile?: string,
): Promise<{ clips: Clip[]; captions: string[] }> {
  const { file, captions } = readCaptions(samples, captionsFile, 'clip-id');
  const skipped: Record<string, number> = {};
  const clips: Clip[] = [];
  for await (const clip of readClips(samples, { skipped })) clips.push(clip);
  if (Object.keys(skipped).length)
    throw new DataError(
      `${samples}: unreadable clips ${JSON.stringify(skipped)}; captions would no longer line up with clips`,
    );
  if (captions.length < clips.length)
    throw new DataError(`${file} has ${captions.length} captions for ${clips.length} clips`);
  return { clips, captions: captions.slice(0, clips.length) };
}

/**
 * Images of a samples directory in name order, with the captions file's lines (line i ↔ image i).
 * A directory of clips gives every frame, each with its clip's caption.
 */
export async function captionedSamples(
  samples: string,
  captionsFile?: string,
): Promise<{ images: Uint8Image[]; captions: string[] }> {
  if (isClipSource(samples)) {
    const { clips, captions } = await captionedClips(samples, captionsFile);
    return {
      images: clips.flatMap((c) => c.frames),
      captions: clips.flatMap((c, i) => c.frames.map(() => captions[i])),
    };
  }
  const { file, captions } = readCaptions(samples, captionsFile, 'image-name');
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

/** Per-frame CLIP score of clips: each frame against its clip's caption, averaged per clip, then over clips. */
export async function clipScoreOfClips(
  model: ClipModel,
  clips: Clip[],
  captions: string[],
  options: { definition?: ClipScoreDefinition; onBatch?: (done: number) => void } = {},
) {
  if (clips.length !== captions.length)
    throw new Error(`CLIP score: ${clips.length} clips but ${captions.length} captions`);
  const images = clips.flatMap((c) => c.frames);
  const result = await clipScore(
    model,
    images,
    clips.flatMap((c, i) => c.frames.map(() => captions[i])),
    options,
  );
  const perClip = new Float64Array(clips.length);
  const perClipCosine = new Float64Array(clips.length);
  let at = 0;
  clips.forEach((clip, i) => {
    const cos = result.perPair.subarray(at, at + clip.frames.length);
    at += clip.frames.length;
    perClip[i] = cos.reduce((s, c) => s + clipScoreOfCosine(c, result.definition), 0) / cos.length;
    perClipCosine[i] = cos.reduce((s, c) => s + c, 0) / cos.length;
  });
  const mean = (x: Float64Array) => x.reduce((s, v) => s + v, 0) / x.length;
  return {
    definition: result.definition,
    score: mean(perClip),
    cosine: mean(perClipCosine),
    clips: clips.length,
    frames: images.length,
    perClip,
  };
}

/**
 * `mdm-eval clip`: CLIP score of samples against their captions. Video samples (`frames`, or a
 * directory that holds clips) are scored per frame against their clip's caption, averaged per
 * clip and then over clips.
 */
export async function clipCommand(
  options: NetworkOptions & { samples: string; captions?: string; definition?: ClipScoreDefinition; frames?: boolean },
) {
  const model = await openClip({ ...options, clip: options.clip ?? 'proxy' });
  if (!model) throw new ConfigError('--clip none: nothing to score with');
  if (options.frames || isClipSource(options.samples)) {
    const { clips, captions } = await captionedClips(options.samples, options.captions);
    const result = await clipScoreOfClips(model, clips, captions, {
      definition: options.definition,
      onBatch: counter('CLIP (frames)'),
    });
    progress.done();
    return {
      clip_score: result.score,
      definition: result.definition,
      cosine: result.cosine,
      n: result.clips,
      per_frame: true,
      clips: result.clips,
      frames: result.frames,
      samples: options.samples,
      clip: model.id,
      proxy: model.proxy,
      ...(model.proxy ? { note: PROXY_NOTE } : {}),
    };
  }
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

/** `mdm-eval merge`: the parts of a sharded `stats` job as one statistics file (.npz + sidecar). */
export function mergeCommand(parts: string[], out: string) {
  const stats = mergeStats(parts);
  writeLabelledStats(out, stats);
  const { mu: _m, sigma: _s, ...label } = stats;
  return { out, parts: parts.length, ...label, dim: stats.mu.length };
}
