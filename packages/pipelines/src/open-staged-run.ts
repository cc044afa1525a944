import { join } from 'node:path';
import { loadAutoencoder } from '@matryoshka-ts/autoencoder';
import { augmentForSampling, checkAugmentationLevel } from '@matryoshka-ts/baselines';
import { ConfigError, Rng } from '@matryoshka-ts/core';
import { baseScheduleOf } from './config.js';
import { type LevelSamples, generate, levelSamplesTensor } from './generate.js';
import type { ImageDataset } from '@matryoshka-ts/data';
import { decodeLatents, latentDataset, latentStageOf } from './latent-data.js';
import type { OpenRun, RunGenerateOptions } from './open-run.js';
import type { RunManifest } from './run-manifest.js';
import { LATENT_RUN } from './stages.js';
import { readAutoencoderProgress } from './train-autoencoder.js';

/**
 * A cascade sampled stage by stage: the base model's top output, noise-augmented at a fixed
 * level, conditions the first super-resolution stage, whose output conditions the next. Returns
 * every stage's outputs, the highest resolution first.
 */
function openCascade(stages: OpenRun[]): Pick<OpenRun, 'generate' | 'levels' | 'functionEvaluations'> {
  const upsamplers = stages.slice(1);
  for (const s of upsamplers)
    if (s.config.stage?.kind !== 'upsampler') throw new ConfigError(`${s.checkpoint}: not a super-resolution stage`);
  const levels = [...stages].reverse().flatMap((s, i) => (i === stages.length - 1 ? s.levels : [s.levels[0]]));
  return {
    levels,
    functionEvaluations: (steps, guidance) => stages.reduce((n, s) => n + s.functionEvaluations(steps, guidance), 0),
    async generate(options: RunGenerateOptions): Promise<LevelSamples[]> {
      const outputs: LevelSamples[][] = [await stages[0].generate(options)];
      for (const [k, stage] of upsamplers.entries()) {
        const stageInfo = stage.config.stage as Extract<NonNullable<typeof stage.config.stage>, { kind: 'upsampler' }>;
        const level = options.augLevel ?? stageInfo.augLevel;
        const schedule = baseScheduleOf(stage.config);
        checkAugmentationLevel(level, schedule.steps);
        const low = levelSamplesTensor(outputs[outputs.length - 1][0]);
        const aug = augmentForSampling(low, level, schedule, new Rng(options.seed * 7919 + 101 * (k + 1)));
        low.dispose();
        try {
          outputs.push(
            await generate(stage.model, stage.params, stage.schedules, stage.conditioner, {
              ...options,
              prediction: stage.config.loss.prediction,
              seed: options.seed + 1_000_003 * (k + 1),
              lowRes: { image: aug.lowRes, augTimes: aug.augTimes },
            }),
          );
        } finally {
          aug.lowRes.dispose();
        }
      }
      const [base, ...rest] = outputs;
      return [...rest.reverse().map((o) => o[0]), ...base];
    },
  };
}

/** Opens a multi-stage run directory (its `run.json`): a cascade, or a latent run with its autoencoder. */
export async function openStagedRun(
  dir: string,
  manifest: RunManifest,
  openStage: (path: string) => Promise<OpenRun>,
): Promise<OpenRun> {
  const diffusion = manifest.stages.filter((s) => s.kind === 'diffusion');
  const stages: OpenRun[] = [];
  try {
    for (const s of diffusion) stages.push(await openStage(join(dir, s.dir)));
  } catch (error) {
    for (const s of stages) s.dispose();
    throw error;
  }
  const top = stages[stages.length - 1];
  const paramCount = stages.reduce((n, s) => n + s.paramCount, 0);
  const trainingSteps = stages.reduce((n, s) => n + s.trainingSteps, 0);
  const trainSeconds = stages.every((s) => s.trainSeconds !== undefined)
    ? stages.reduce((n, s) => n + (s.trainSeconds ?? 0), 0)
    : undefined;
  const dispose = () => stages.forEach((s) => s.dispose());
  if (manifest.kind === 'cascaded') {
    const cascade = openCascade(stages);
    const resolutions = cascade.levels.map((l) => l.resolution);
    return { ...top, kind: 'cascaded', paramCount, trainingSteps, trainSeconds, ...cascade, resolutions, dispose };
  }
  if (manifest.kind !== 'latent') throw new ConfigError(`${dir}: unknown multi-stage kind '${manifest.kind}'`);
  const latent = latentStageOf(top.config, join(dir, LATENT_RUN.diffusion));
  const autoencoder = loadAutoencoder(latent.autoencoder);
  let images: ImageDataset | undefined;
  return {
    ...top,
    kind: 'latent',
    paramCount,
    autoencoderParamCount: autoencoder.paramCount,
    trainSeconds,
    // Absent for pretrained weights (no autoencoder checkpoint).
    autoencoderSeconds: readAutoencoderProgress(join(dir, LATENT_RUN.autoencoder))?.seconds,
    levels: [{ resolution: latent.imageResolution, channels: autoencoder.config.outChannels, frames: 1 }],
    resolutions: [latent.imageResolution],
    // FID references and captions: the images the autoencoder encoded, at their own size.
    dataset: () => (images ??= latentDataset(top.config, latent.imageResolution)),
    generate: async (options) => [
      await decodeLatents(autoencoder, (await top.generate(options))[0], latent.scaleFactor),
    ],
    dispose: () => {
      dispose();
      autoencoder.dispose();
    },
  };
}
