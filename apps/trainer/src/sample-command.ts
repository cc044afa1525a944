import { basename, dirname, join } from 'node:path';
import { type BackendName, initBackend } from '@matryoshka-ts/backends';
import { ConfigError } from '@matryoshka-ts/core';
import {
  ProgressLine,
  openRun,
  previewConditions,
  runBackend,
  sampleGridPng,
  writeRunFile,
  writeVideoSamples,
} from '@matryoshka-ts/pipelines';

export interface SampleCommandOptions {
  run: string;
  prompt?: string;
  label?: number;
  n: number;
  steps: number;
  sampler: 'ddpm' | 'ddim';
  eta: number;
  guidance?: number;
  threshold?: 'none' | 'clip' | 'dynamic' | 'dynamic-deepfloyd';
  out?: string;
  seed: number;
  ema: boolean;
  /** Sample weights holding NaN or Inf anyway (warned) instead of refusing them. */
  allowNonfinite?: boolean;
  backend?: BackendName;
}

/**
 * `mdm-train sample`: images at every level from a run's checkpoint (EMA weights by default), as a
 * PNG grid; for a video run a contact sheet (rows = samples: the clip's frames, then its
 * first-frame level), one looping GIF per sample and, where ffmpeg is installed, an MP4 each,
 * beside the PNG. Returns the PNG's path.
 */
export async function sampleCommand(options: SampleCommandOptions): Promise<string> {
  await initBackend({ backend: options.backend ?? runBackend(options.run) });
  const run = await openRun(options.run, { ema: options.ema, allowNonFinite: options.allowNonfinite });
  const { config, conditioner } = run;
  let captions: string[];
  let labels: number[];
  if (options.prompt !== undefined) {
    if (conditioner.kind !== 'text') throw new ConfigError('--prompt needs a text-conditioned run');
    captions = new Array(options.n).fill(options.prompt);
    labels = new Array(options.n).fill(0);
  } else if (options.label !== undefined) {
    if (conditioner.kind !== 'labels') throw new ConfigError('--label needs a class-conditioned run');
    if (options.label < 0 || options.label > conditioner.numClasses)
      throw new ConfigError(`--label must be 0…${conditioner.numClasses} (${conditioner.numClasses} = unconditional)`);
    captions = new Array(options.n).fill('');
    labels = new Array(options.n).fill(options.label);
  } else {
    ({ captions, labels } = previewConditions(run.dataset(), options.n));
  }
  await run.prepare(captions);
  const progress = new ProgressLine(5);
  const images = await run.generate({
    captions,
    labels,
    steps: options.steps,
    sampler: options.sampler,
    eta: options.eta,
    guidance: options.guidance ?? config.sampling.guidance,
    threshold: options.threshold ?? config.sampling.threshold,
    seed: options.seed,
    onStep: (i, total) => progress.update(`sampling: step ${i + 1}/${total}`),
  });
  progress.done();
  const path = options.out ?? join(options.run, 'sample.png');
  run.dispose();
  if (images[0].frames === 1) {
    writeRunFile(path, sampleGridPng(images));
    return path;
  }
  const prefix = basename(path).replace(/\.png$/i, '');
  const written = await writeVideoSamples(dirname(path), images, { prefix, contactSheet: basename(path) });
  console.error(
    `${written.gifs.length} clips: ${written.gifs.join(', ')}` +
      `${written.mp4s.length ? `; MP4: ${written.mp4s.join(', ')}` : `; no MP4 (${written.mp4Skipped})`}`,
  );
  return written.contactSheet;
}
