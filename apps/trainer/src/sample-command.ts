import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BackendName, initBackend } from '@matryoshka-ts/core';
import { NestedUNet, paramsFrom } from '@matryoshka-ts/nested-unet';
import * as tf from '@tensorflow/tfjs-core';
import { modelConfigOf, parseTrainConfig } from './config.js';
import { generate } from './generate.js';
import { sampleGridPng } from './grid.js';
import { levelsOf, phaseModelConfig } from './phases.js';
import { ProgressLine } from './progress.js';
import { levelSchedules, loadDataset, makeConditioner, previewConditions } from './train.js';
import { loadCheckpoint } from './train-state.js';

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
  backend?: BackendName;
}

/** `mdm-train sample`: images at every level from a run's checkpoint (EMA weights by default), as a PNG grid. */
export async function sampleCommand(options: SampleCommandOptions): Promise<string> {
  const ckpt = loadCheckpoint(join(options.run, 'checkpoint.safetensors'));
  const config = parseTrainConfig(ckpt.config);
  await initBackend({ backend: options.backend ?? config.backend });
  const full = modelConfigOf(config);
  const resolutions = levelsOf(full).map((l) => l.resolution);
  const from = resolutions.indexOf(config.phases[ckpt.progress.phase].resolution);
  const model = new NestedUNet(phaseModelConfig(full, from), { weights: options.ema ? ckpt.values.ema : ckpt.values.params });
  const conditioner = makeConditioner(config, full);
  let captions: string[];
  let labels: number[];
  if (options.prompt !== undefined) {
    if (conditioner.kind !== 'text') throw new Error('--prompt needs a text-conditioned run');
    captions = new Array(options.n).fill(options.prompt);
    labels = new Array(options.n).fill(0);
  } else if (options.label !== undefined) {
    if (conditioner.kind !== 'labels') throw new Error('--label needs a class-conditioned run');
    if (options.label < 0 || options.label > conditioner.numClasses) throw new Error(`--label must be 0…${conditioner.numClasses} (${conditioner.numClasses} = unconditional)`);
    captions = new Array(options.n).fill('');
    labels = new Array(options.n).fill(options.label);
  } else {
    ({ captions, labels } = previewConditions(loadDataset(config, resolutions[0]), options.n));
  }
  const progress = new ProgressLine(5);
  const images = generate(model, paramsFrom(model.params), levelSchedules(config, resolutions).slice(from), conditioner, {
    captions,
    labels,
    steps: options.steps,
    sampler: options.sampler,
    eta: options.eta,
    guidance: options.guidance ?? config.sampling.guidance,
    threshold: options.threshold ?? config.sampling.threshold,
    prediction: config.loss.prediction,
    seed: options.seed,
    onStep: (i, total) => progress.update(`sampling: step ${i + 1}/${total}`),
  });
  progress.done();
  const path = options.out ?? join(options.run, 'sample.png');
  writeFileSync(path, sampleGridPng(images));
  model.dispose();
  tf.disposeVariables();
  return path;
}
