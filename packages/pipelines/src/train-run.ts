import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadAutoencoder } from '@matryoshka-ts/autoencoder';
import { ConfigError } from '@matryoshka-ts/core';
import { type TrainConfig, isMultiStage, modelConfigOf, runKindOf } from './config.js';
import { latentDataset, measureScaleFactor, prepareLatentCache } from './latent-data.js';
import { checkTrainingMemory } from './memory-plan.js';
import { prepareFreshRunFolder } from './run-folder.js';
import { ProgressLine, formatDuration } from './progress.js';
import { previewConditions } from './data-source.js';
import { sampleGridPng } from './grid.js';
import { openRun } from './open-run.js';
import { readCheckpointInfo } from './run-checkpoint.js';
import { writeRunFile } from './run-files.js';
import { type AutoencoderStage, type DiffusionStage, LATENT_RUN, runStages } from './stages.js';
import { type TrainOptions, type TrainResult, train } from './train.js';
import { trainAutoencoderStage } from './train-autoencoder.js';
import { RUN_MANIFEST, type RunManifest, readRunManifest, writeJsonAtomic } from './run-manifest.js';

/** Steps a stage trains: `--steps` when given (each stage), else the sum of its phases. */
function stageTotal(config: TrainConfig, steps: number | undefined): number {
  return steps ?? config.phases.reduce((n, p) => n + p.steps, 0);
}

/**
 * Trains any kind of run: an MDM or a simple DM as one model (`train`); a cascade's base and
 * super-resolution stages, or a latent run's autoencoder, latent cache and diffusion model, in
 * order, each in its own directory under `out`. With `resume`, finished stages are kept, the
 * interrupted one resumes, and the later ones start.
 */
export async function trainRun(config: TrainConfig, options: TrainOptions): Promise<TrainResult> {
  if (!isMultiStage(config)) return train(config, options);
  if ((options.communicator?.world ?? 1) > 1)
    throw new ConfigError(
      `a ${runKindOf(config)} run trains its stages in one process: data-parallel training (mpirun, srun) ` +
        'covers single-stage runs (model.kind mdm or simple)',
    );
  // Every diffusion stage is checked before the first starts: a cascade's last stage must not
  // fail for memory after the others have trained.
  for (const stage of runStages(config)) {
    if (stage.kind !== 'diffusion') continue;
    try {
      checkTrainingMemory(stage.config, modelConfigOf(stage.config));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw new ConfigError(`stage ${stage.name}: ${error.message}`, { cause: error });
    }
  }
  const out = options.out;
  const log = new ProgressLine();
  if (!options.resume) {
    const aside = prepareFreshRunFolder(out, options.force);
    if (aside) log.log(`${out} held a run: moved to ${aside}`);
  }
  mkdirSync(out, { recursive: true });
  const previous = options.resume ? readRunManifest(out) : undefined;
  if (options.resume && !previous) throw new ConfigError(`--resume: ${out} holds no multi-stage run (${RUN_MANIFEST})`);
  const manifest: RunManifest = {
    format: 'matryoshka-ts/run/1',
    kind: runKindOf(config),
    stages: runStages(config).map((s) => ({ name: s.name, kind: s.kind, dir: s.dir })),
    ...(previous?.scaleFactor !== undefined ? { scaleFactor: previous.scaleFactor } : {}),
  };
  writeRunFile(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  writeJsonAtomic(join(out, RUN_MANIFEST), manifest);

  const started = performance.now();
  let result: TrainResult | undefined;
  let stages = runStages(config, manifest.scaleFactor);
  for (let i = 0; i < stages.length; i++) {
    const stage = stages[i];
    const dir = join(out, stage.dir);
    log.log(`stage ${i + 1}/${stages.length}: ${stage.name}`);
    if (stage.kind === 'autoencoder') {
      await trainAutoencoderStage(stage, config, dir, { resume: Boolean(options.resume), steps: undefined });
      manifest.scaleFactor = await prepareLatents(stage, config, out, manifest.scaleFactor, log);
      writeJsonAtomic(join(out, RUN_MANIFEST), manifest);
      // The diffusion stage's config carries the scale factor now known.
      stages = runStages(config, manifest.scaleFactor);
      continue;
    }
    // The run folder was made ready above. Resuming, a stage that wrote metrics but no checkpoint
    // starts over (its partial folder moved aside).
    result = await trainDiffusionStage(stage, dir, { ...options, force: Boolean(options.resume) }, log);
  }
  const samples = await writeRunSamples(out, config, log);
  const seconds = (performance.now() - started) / 1000;
  log.log(`run done: ${stages.length} stages in ${formatDuration(seconds)} (${out})`);
  return { ...result!, seconds, samples };
}

/** The whole run's sample grid (a cascade's every stage; a latent run's decoded images): out/samples.png. */
async function writeRunSamples(out: string, config: TrainConfig, log: ProgressLine): Promise<string | undefined> {
  if (config.data.source !== 'bundled') {
    log.log(`samples: draw them with mdm-train sample --run ${out} --prompt … (the data is streamed)`);
    return undefined;
  }
  const run = await openRun(out);
  try {
    const { captions, labels } = previewConditions(run.dataset(), config.sampling.n);
    await run.prepare(captions);
    const images = await run.generate({
      captions,
      labels,
      steps: config.sampling.steps,
      sampler: config.sampling.sampler,
      eta: config.sampling.eta,
      guidance: config.sampling.guidance,
      threshold: config.sampling.threshold,
      seed: config.seed + 12345,
      onStep: (i, all) => log.update(`sampling the ${run.kind} run: step ${i + 1}/${all}`),
    });
    log.done();
    const path = join(out, 'samples.png');
    writeRunFile(path, sampleGridPng(images));
    writeRunFile(join(out, 'samples.txt'), `${captions.map((c, i) => `${i + 1}. ${c}`).join('\n')}\n`);
    log.log(`samples: ${path}`);
    return path;
  } finally {
    run.dispose();
  }
}

async function trainDiffusionStage(
  stage: DiffusionStage,
  dir: string,
  options: TrainOptions,
  log: ProgressLine,
): Promise<TrainResult> {
  const checkpoint = join(dir, 'checkpoint.safetensors');
  const resume = Boolean(options.resume) && existsSync(checkpoint);
  // A finished stage (its checkpoint at its last step) is kept as it is.
  const progress = resume ? readCheckpointInfo(checkpoint).progress : undefined;
  if (progress && progress.step >= stageTotal(stage.config, options.steps)) {
    log.log(`stage ${stage.name}: done (${progress.step} steps), kept`);
    return { steps: progress.step, finalLoss: Number.NaN, badSteps: progress.badTotal, seconds: 0 };
  }
  return train(stage.config, { ...options, out: dir, resume });
}

/** Encodes the data set into the latent cache and returns the scale factor (measured once for `auto`). */
async function prepareLatents(
  stage: AutoencoderStage,
  config: TrainConfig,
  out: string,
  known: number | undefined,
  log: ProgressLine,
): Promise<number> {
  const autoencoder = loadAutoencoder(join(out, LATENT_RUN.weights));
  try {
    const dataset = latentDataset(config, stage.imageResolution);
    const cache = await prepareLatentCache(
      autoencoder,
      dataset,
      join(out, LATENT_RUN.cache),
      (line) => log.log(line),
      (done, total) => log.update(`latent cache: ${done}/${total} images`),
    );
    log.done();
    const m = config.model as Extract<TrainConfig['model'], { kind: 'latent' }>;
    let scale = typeof m.scaleFactor === 'number' ? m.scaleFactor : known;
    if (scale === undefined) {
      scale = measureScaleFactor(cache, config, config.phases[0].batchSize);
      log.log(`latent scale factor: ${scale.toPrecision(5)} (1/std of the first batch's latents)`);
    }
    cache.close();
    return scale;
  } finally {
    autoencoder.dispose();
  }
}
