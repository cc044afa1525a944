import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type Communicator, ConfigError, MdmError, Rng, SINGLE_PROCESS } from '@matryoshka-ts/core';
import type { SkipCounts } from '@matryoshka-ts/data';
import { NestedUNet, paramsFrom, resolveConfig } from '@matryoshka-ts/nested-unet';
import type { LevelSchedules } from '@matryoshka-ts/schedules';
import { type AutoencoderKL, loadAutoencoder } from '@matryoshka-ts/autoencoder';
import { augmentForTraining, topLevelLossWeights } from '@matryoshka-ts/baselines';
import { firstFrames } from '@matryoshka-ts/losses';
import { type Conditioner, conditionBatch } from './conditioning.js';
import { type TrainConfig, baseScheduleOf, levelSchedulesOf, modelConfigOf, runKindOf } from './config.js';
import { decodeLatents, latentStageOf, openLatentTrainingData } from './latent-data.js';
import { openConditioner } from './frozen-encoder.js';
import { type TrainingData, openTrainingData } from './data-source.js';
import { generate } from './generate.js';
import { sampleGridPng } from './grid.js';
import { clipGif, contactSheetPng } from './video-output.js';
import { levelName, nestDeeper, phaseBounds, phaseLevel, phaseModelConfig } from './phases.js';
import { ProgressLine, Throughput, formatDuration } from './progress.js';
import {
  type LoadedCheckpoint,
  type TrainProgress,
  loadCheckpoint,
  saveCheckpoint,
  snapshotPath,
} from './run-checkpoint.js';
import { RunLog, type StepMetrics } from './run-log.js';
import { writeRunFile } from './run-files.js';
import { TrainStep } from './train-step.js';
import { DataParallel } from './data-parallel.js';
import { dataPositionOnResume } from './data-parallel-resume.js';
import { weightsFromRun } from './init-from.js';
import { checkProgress, prepareFreshRunFolder } from './run-folder.js';
import { readWeightsAsync } from '@matryoshka-ts/layers';
import { requireBackend } from './require-backend.js';
import { checkTrainingMemory } from './memory-plan.js';

export interface TrainOptions {
  /** Run directory (created if needed). */
  out: string;
  /** Continue the run in `out` from its checkpoint. */
  resume?: boolean;
  /**
   * Start a fresh run in an `out` that already holds one: the old run is moved aside to
   * `<out>.replaced-<time>` (never deleted). Without it such an `out` is refused.
   */
  force?: boolean;
  /** Total steps of the run (default: the sum of the phases' steps). */
  steps?: number;
  /** Called after every step with its metrics and the number of live tensors (for leak checks and UIs). */
  onStep?: (metrics: StepMetrics, liveTensors: number) => void;
  /**
   * The processes of a data-parallel run (`initDistributed` of @matryoshka-ts/backends; default one
   * process). Each rank trains on its part of every batch (`batchSize` per rank) with gradients
   * averaged over the ranks; rank 0 alone writes the run's files. Every rank must see `out`.
   */
  communicator?: Communicator;
}

export interface TrainResult {
  steps: number;
  finalLoss: number;
  badSteps: number;
  seconds: number;
  /** Path of the last sample grid written. */
  samples?: string;
}

/** Too many non-finite losses in a row: the run stops, its last good checkpoint intact. */
export class TrainingDivergedError extends MdmError {
  constructor(message: string) {
    super('TRAINING_DIVERGED', message);
  }
}

/** The model of one phase of progressive training, and its training step (Adam and EMA state). */
interface Phase {
  model: NestedUNet;
  step: TrainStep;
  /** The full model's level this phase's top level is. */
  from: number;
}

function addSkips(a: SkipCounts, b: SkipCounts): SkipCounts {
  const sum = { ...a };
  for (const [reason, n] of Object.entries(b)) sum[reason] = (sum[reason] ?? 0) + n;
  return sum;
}

/** The data side of the progress line for streamed sources: decode speed and skipped inputs. */
function dataProgress(imagesPerSecond: number | undefined, skipped: SkipCounts | undefined): string {
  if (imagesPerSecond === undefined) return '';
  const rate = Number.isFinite(imagesPerSecond) ? imagesPerSecond.toFixed(0) : '?';
  const total = Object.values(skipped ?? {}).reduce((a, b) => a + b, 0);
  return ` | ${rate} img/s data | skipped ${total} input${total === 1 ? '' : 's'}`;
}

function variablesOf(values: Map<string, Float32Array>, shapes: Map<string, number[]>): Map<string, tf.Variable> {
  return new Map(
    [...values].map(([name, data]) => {
      const initial = tf.tensor(data, shapes.get(name)!);
      const v = tf.variable(initial, false);
      initial.dispose();
      return [name, v];
    }),
  );
}

/**
 * Trains an MDM on the active backend: progressive phases (each adding outer levels, initialised
 * from the previous phase's weights and EMA), the shared `TrainStep` (Adam with warm-up and
 * clipping, EMA, the non-finite guard), condition dropout, atomic checkpoints, metrics.jsonl, a
 * loss curve (loss.svg) and sample grids. `config.backend` is for the caller to start
 * (`mdm-train` does); this function only checks that one is active.
 */
export async function train(config: TrainConfig, options: TrainOptions): Promise<TrainResult> {
  requireBackend();
  const model = modelConfigOf(config);
  checkTrainingMemory(config, model);
  const comm = options.communicator ?? SINGLE_PROCESS;
  if (comm.world > 1 && config.stage?.kind === 'latent')
    throw new ConfigError('a latent stage trains in one process: data-parallel training does not cover it yet');
  if (comm.world > 1 && config.data.world > 1)
    throw new ConfigError(
      `data.world is ${config.data.world} but the launcher started ${comm.world} ranks: ` +
        'under mpirun or srun the ranks split the data themselves; leave data.rank and data.world unset',
    );
  // A fresh run never writes over another run's history (rank 0 decides; the others wait for it).
  if (!options.resume && comm.rank === 0) {
    const aside = prepareFreshRunFolder(options.out, options.force);
    if (aside) process.stderr.write(`${options.out} held a run: moved to ${aside}\n`);
  }
  comm.barrier();
  // The data is opened first, so a bad path fails before any work, and closed (decode workers
  // terminated) however the run ends.
  const top = resolveConfig(model).levels[0];
  const data =
    config.stage?.kind === 'latent'
      ? await openLatentTrainingData(config, options.out)
      : await openTrainingData(config, top.resolution, top.frames, { rank: comm.rank, world: comm.world });
  try {
    return await runTraining(config, options, data, comm);
  } finally {
    await data.close();
  }
}

async function runTraining(
  config: TrainConfig,
  options: TrainOptions,
  data: TrainingData,
  comm: Communicator,
): Promise<TrainResult> {
  const out = options.out;
  // Data-parallel: rank 0 writes the run's files and prints; every rank computes.
  const dp = comm.world > 1 ? new DataParallel(comm) : undefined;
  const writer = comm.rank === 0;
  if (writer) mkdirSync(out, { recursive: true });
  const checkpointPath = join(out, 'checkpoint.safetensors');
  const progressLine = new ProgressLine(10, !writer);
  if (dp)
    progressLine.log(
      `data-parallel: ${dp.world} ranks (${comm.launcher}); batchSize is per rank, a step averages ${dp.world} batches`,
    );

  const full = modelConfigOf(config);
  const fullLevels = resolveConfig(full).levels;
  const resolutions = fullLevels.map((l) => l.resolution);
  // Frames per sample the data gives: a video model's clips (its latent stage's or images' 1).
  const dataFrames = config.stage?.kind === 'latent' ? 1 : fullLevels[0].frames;
  const schedules = levelSchedulesOf(config);
  // A frozen encoder's cache is written by rank 0 first; the other ranks then find it full.
  if (!writer) comm.barrier();
  const conditioner = await openConditioner(config, full, (line) => progressLine.log(line));
  if (conditioner.kind === 'labels' && data.classNames.length > conditioner.numClasses) {
    throw new ConfigError(
      `the data has ${data.classNames.length} classes but the model's label conditioning has ${conditioner.numClasses}`,
    );
  }
  progressLine.log(`data: ${data.description}`);
  const preview = await data.preview(config.sampling.n);
  // A frozen ONNX encoder encodes every caption once, before training (later runs read its cache).
  if (conditioner.kind === 'text' && conditioner.prepare)
    await conditioner.prepare(['', ...preview.captions, ...(await data.captions())]);
  if (writer) comm.barrier();

  let progress: TrainProgress;
  let restored: LoadedCheckpoint | undefined;
  let log: RunLog | undefined;
  if (options.resume) {
    restored = loadCheckpoint(checkpointPath);
    progress = restored.progress;
    checkProgress(progress, config.phases.length, checkpointPath);
    // Steps logged after the checkpoint are replayed by the resumed run: the log drops them.
    log = writer ? new RunLog(out, progress.step, (line) => progressLine.log(line)) : undefined;
    progressLine.log(`resuming ${out} at step ${progress.step} (phase ${progress.phase + 1}/${config.phases.length})`);
    // This rank's data position, re-partitioned (or refused) when the world size changed.
    const resumed = dataPositionOnResume(progress, config, comm, checkpointPath);
    progress.data = resumed.position;
    if (resumed.note) progressLine.log(resumed.note);
  } else {
    progress = {
      step: 0,
      phase: 0,
      phaseStep: 0,
      rng: new Rng(config.seed).getState(),
      data: { epoch: 0, cursor: 0 },
      adamStep: 0,
      emaUpdates: 0,
      badInARow: 0,
      badTotal: 0,
    };
    log = writer ? new RunLog(out) : undefined;
  }
  if (writer) writeRunFile(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);

  const skippedBefore: SkipCounts = { ...(progress.dataSkipped ?? {}) };
  const total = options.steps ?? config.phases.reduce((n, p) => n + p.steps, 0);
  const bounds = phaseBounds(config, total);
  const rng = new Rng(progress.rng);
  const started = performance.now();
  const speed = new Throughput();
  let finalLoss = Number.NaN;
  let current: Phase | undefined;
  let lastSamples: string | undefined;

  const startPhase = async (index: number, previous: Phase | undefined): Promise<Phase> => {
    const from = phaseLevel(full, config.phases[index], index);
    const model = new NestedUNet(phaseModelConfig(full, from), { seed: config.seed + index });
    const shapes = new Map(model.specs.map((s) => [s.name, s.shape]));
    const phaseSchedules = schedules.slice(from);
    const { decay, decayFloor, ...optimizer } = config.optimizer;
    const stepOptions = {
      loss: lossOptionsOf(config, resolutions.length - from),
      // Each phase starts its own Adam, warm-up and (with `decay: 'cosine'`) fall.
      optimizer:
        decay === 'cosine'
          ? { ...optimizer, lrDecay: { steps: config.phases[index].steps, floor: decayFloor } }
          : optimizer,
      ema: config.ema,
    };
    let step: TrainStep;
    if (restored && restored.progress.phase === index) {
      model.setWeights(restored.values.params);
      step = new TrainStep(model, phaseSchedules, stepOptions, variablesOf(restored.values.ema, shapes));
      step.adam.load(restored.progress.adamStep, restored.values.adamM, restored.values.adamV, shapes);
      step.emaUpdates = restored.progress.emaUpdates;
      restored = undefined;
    } else {
      let ema: Map<string, tf.Variable> | undefined;
      if (previous) {
        // Progressive training: the previous phase's model is this one's inner part.
        const added = previous.from - from;
        model.setWeights(nestDeeper(await readWeightsAsync(previous.model.params), added));
        const emaValues = await readWeightsAsync(model.params);
        const previousEma = await readWeightsAsync(previous.step.ema!);
        for (const [k, v] of nestDeeper(previousEma, added)) emaValues.set(k, Float32Array.from(v));
        ema = variablesOf(emaValues, shapes);
        const name = (n: number) => levelName(fullLevels[n].resolution, fullLevels[n].frames);
        progressLine.log(
          `phase ${index + 1}: ${name(from)}, inner ${name(previous.from)} initialised from phase ${index}`,
        );
      }
      if (!previous && config.initFrom) {
        // Across runs: a trained image run is this model's inside (weights and EMA).
        const initial = weightsFromRun(config.initFrom, model.specs, model.config.levels.length);
        model.setWeights(initial.params);
        const emaValues = await readWeightsAsync(model.params);
        for (const [k, v] of initial.ema) emaValues.set(k, v);
        ema = variablesOf(emaValues, shapes);
        progressLine.log(`phase ${index + 1}: ${initial.description}`);
      }
      step = new TrainStep(model, phaseSchedules, stepOptions, ema);
      progress.adamStep = 0;
      progress.emaUpdates = 0;
    }
    previous?.model.dispose();
    previous?.step.dispose();
    // Every rank starts the phase from rank 0's weights, EMA and Adam state.
    await dp?.broadcastVariables([
      ...model.params.values(),
      ...step.ema!.values(),
      ...step.adam.m.values(),
      ...step.adam.v.values(),
    ]);
    return { model, step, from };
  };

  // A super-resolution stage trains on noise-augmented low-resolution views drawn with the run's schedule.
  const upsampler = config.stage?.kind === 'upsampler' ? config.stage : undefined;
  const augmentation = upsampler ? baseScheduleOf(config) : undefined;
  // A latent stage's sample grids are decoded by its autoencoder.
  let autoencoder: AutoencoderKL | undefined;
  const latent = config.stage?.kind === 'latent' ? latentStageOf(config, out) : undefined;

  const writeSamples = async (tag: string) => {
    if (!current || !writer) return;
    if (upsampler) {
      // An upsampler's samples need the base stage's: the cascade writes them when every stage is trained.
      progressLine.log(`samples (${tag}): drawn by the cascade once every stage is trained`);
      return;
    }
    if (latent) autoencoder ??= loadAutoencoder(latent.autoencoder);
    lastSamples = await writeSampleGrid(
      out,
      tag,
      current,
      schedules,
      conditioner,
      preview,
      data.classNames,
      config,
      progressLine,
      latent && autoencoder ? { autoencoder, scaleFactor: latent.scaleFactor } : undefined,
    );
  };

  const secondsBefore = progress.seconds ?? 0;
  // Every rank calls it (the data-parallel checks are collective); rank 0 writes.
  const checkpoint = async () => {
    if (!current) return;
    progress.rng = rng.getState();
    progress.seconds = secondsBefore + (performance.now() - started) / 1000;
    const { model, step } = current;
    let ranks: Pick<TrainProgress, 'world' | 'dataRanks'> = {};
    if (dp) {
      await dp.checkSame(model.params.values(), 'weights');
      // The bundled data has one position for all ranks; a streamed source one per rank.
      const dataRanks = dp.gatherPositions(progress.data);
      ranks = { world: dp.world, ...(config.data.source === 'bundled' ? {} : { dataRanks }) };
    }
    if (!writer) return;
    // A resumed run's ranks are this session's, not those of the checkpoint it started from.
    const { world: _world, dataRanks: _dataRanks, ...ours } = progress;
    await saveCheckpoint(
      checkpointPath,
      { params: model.params, ema: step.ema!, adamM: step.adam.m, adamV: step.adam.v },
      { ...ours, ...ranks, adamStep: step.adam.step },
      config,
    );
  };

  const snapshot = async (stepNo: number) => {
    if (!current || !writer) return;
    mkdirSync(join(out, 'snapshots'), { recursive: true });
    const empty = new Map<string, tf.Tensor>();
    const tensors = { params: empty, ema: current.step.ema!, adamM: empty, adamV: empty };
    await saveCheckpoint(snapshotPath(out, stepNo), tensors, { ...progress, rng: rng.getState() }, config);
  };

  for (let p = progress.phase; p < config.phases.length && progress.step < total; p++) {
    if (p !== progress.phase) {
      progress.phase = p;
      progress.phaseStep = 0;
    }
    current = await startPhase(p, current);
    const phase = config.phases[p];

    while (progress.step < bounds[p].end) {
      const stepNo = progress.step + 1;
      const batch = await data.next(phase.batchSize, progress.data);
      // Data-parallel: this rank draws its part of the batch from its own generator (one seed
      // drawn from the run's, the same on every rank).
      const stepRng = dp ? dp.partRng(rng) : rng;
      // Condition dropout draws from the run's generator before the step draws times and noise.
      const cond = conditionBatch(conditioner, batch.captions, batch.labels, config.conditioning.dropout, stepRng);
      if (upsampler && augmentation) {
        const aug = augmentForTraining(
          batch.images,
          upsampler.baseResolution,
          augmentation,
          stepRng,
          config.loss.lowRes,
        );
        cond.lowRes = aug.lowRes;
        cond.augTimes = aug.augTimes;
      }
      // A video model's image phase trains on each clip's first frame (the temporal D^r).
      const images = current.model.levels[0].frames < dataFrames ? firstFrames(batch.images, dataFrames) : batch.images;
      const gradients = await current.step.computeGradients(images, cond, stepRng);
      const result = await current.step.update(dp ? await dp.averageGradients(gradients) : gradients);
      tf.dispose(
        [batch.images, images, cond.tokens, cond.mask, cond.labels, cond.lowRes].filter(
          (t) => t !== undefined,
        ) as tf.Tensor[],
      );
      const { loss, skipped } = result;
      if (skipped) {
        progress.badInARow += 1;
        progress.badTotal += 1;
        progressLine.log(
          `step ${stepNo}: ${skipped} (${loss}); ` +
            `update skipped (${progress.badInARow} in a row, ${progress.badTotal} in total)`,
        );
      } else {
        progress.badInARow = 0;
        progress.emaUpdates = current.step.emaUpdates;
        finalLoss = loss;
      }
      progress.step = stepNo;
      progress.phaseStep += 1;
      speed.tick();
      const dataStats = data.stats();
      const runSkipped = dataStats ? addSkips(skippedBefore, dataStats.skipped) : undefined;
      const dataSkipped = runSkipped && Object.keys(runSkipped).length ? runSkipped : undefined;
      if (dataSkipped) progress.dataSkipped = dataSkipped;
      const metrics: StepMetrics = {
        step: stepNo,
        phase: p,
        resolution: phase.resolution,
        loss,
        mse: result.mse,
        lr: result.lr,
        gradNorm: result.gradNorm,
        stepsPerSec: speed.perSecond(),
        ...(skipped ? { skipped } : {}),
        ...(dataSkipped ? { dataSkipped } : {}),
      };
      log?.append(metrics);
      options.onStep?.(metrics, tf.memory().numTensors);
      const rate = speed.perSecond();
      const speedText = Number.isFinite(rate)
        ? `${rate.toFixed(2)} steps/s | ${(rate * phase.batchSize * comm.world).toFixed(1)} ` +
          `${current.model.levels[0].frames > 1 ? 'clips' : 'img'}/s | ` +
          `ETA ${formatDuration((total - stepNo) / rate)}`
        : 'measuring speed…';
      progressLine.update(
        `step ${stepNo}/${total} | phase ${p + 1}/${config.phases.length} ` +
          `(${levelName(phase.resolution, fullLevels[current.from].frames)}) | ` +
          `loss ${loss.toFixed(4)} | ${speedText}` +
          `${progress.badTotal ? ` | skipped ${progress.badTotal} steps` : ''}` +
          `${dataProgress(dataStats?.imagesPerSecond, runSkipped)}` +
          `${dp && Number.isFinite(rate) ? ` | ${dp.describeCost(1 / rate)}` : ''}`,
      );
      if (progress.badInARow >= config.maxBadSteps) {
        progressLine.done();
        throw new TrainingDivergedError(
          `${progress.badInARow} non-finite losses in a row at step ${stepNo}: stopping. ` +
            `The last good checkpoint (${checkpointPath}) is intact; lower optimizer.lr or check the data.`,
        );
      }
      if (stepNo % config.plotEvery === 0) log?.plot();
      // A skipped step never overwrites the last good checkpoint.
      if (!skipped && stepNo % config.checkpointEvery === 0) await checkpoint();
      if (config.snapshotEvery > 0 && stepNo % config.snapshotEvery === 0) await snapshot(stepNo);
      if (config.sampling.every > 0 && stepNo % config.sampling.every === 0 && stepNo < total)
        await writeSamples(`step${stepNo}`);
    }
  }
  progressLine.done();
  await checkpoint();
  log?.plot();
  await writeSamples('final');
  current?.step.dispose();
  current?.model.dispose();
  autoencoder?.dispose();
  const seconds = (performance.now() - started) / 1000;
  progressLine.log(
    `done: ${progress.step} steps in ${formatDuration(seconds)}, final loss ${finalLoss.toFixed(4)}` +
      `${progress.badTotal ? `, ${progress.badTotal} steps skipped` : ''}` +
      `${dp?.reducedSteps ? `; ${dp.describeCost()}` : ''}`,
  );
  return { steps: progress.step, finalLoss, badSteps: progress.badTotal, seconds, samples: lastSamples };
}

/**
 * The loss options of a model of `levels` levels: a simple DM trains its top level only (weights
 * [1, 0, …], the paper's NestedUNet-without-multi-resolution-loss baseline) unless weights are given.
 */
export function lossOptionsOf(config: TrainConfig, levels: number): TrainConfig['loss'] {
  if (runKindOf(config) !== 'simple' || config.loss.weights) return config.loss;
  return { ...config.loss, weights: topLevelLossWeights(levels) };
}

/**
 * Writes samples.png (and samples-<tag>.png, samples.txt) from the phase's EMA weights; for a video
 * model samples.png is a contact sheet and samples-<k>.gif animates sample k. Returns the PNG's path.
 */
async function writeSampleGrid(
  out: string,
  tag: string,
  phase: Phase,
  schedules: LevelSchedules,
  conditioner: Conditioner,
  preview: { captions: string[]; labels: number[] },
  classNames: readonly string[],
  config: TrainConfig,
  progressLine: ProgressLine,
  latent?: { autoencoder: AutoencoderKL; scaleFactor: number },
): Promise<string> {
  let images = await generate(phase.model, paramsFrom(phase.step.ema!), schedules.slice(phase.from), conditioner, {
    captions: preview.captions,
    labels: preview.labels,
    steps: config.sampling.steps,
    sampler: config.sampling.sampler,
    eta: config.sampling.eta,
    guidance: config.sampling.guidance,
    threshold: config.sampling.threshold,
    prediction: config.loss.prediction,
    seed: config.seed + 12345,
    onStep: (i, all) => progressLine.update(`sampling ${tag}: step ${i + 1}/${all}`),
  });
  if (latent) images = [await decodeLatents(latent.autoencoder, images[0], latent.scaleFactor)];
  // A video model: a contact sheet (rows = samples) and one looping GIF per sample.
  const video = images[0].frames > 1;
  const png = video ? contactSheetPng(images) : sampleGridPng(images);
  if (video) images[0].images.forEach((_, k) => writeRunFile(join(out, `samples-${k}.gif`), clipGif(images[0], k)));
  const path = join(out, 'samples.png');
  writeRunFile(join(out, `samples-${tag}.png`), png);
  writeRunFile(path, png);
  const names = preview.captions.map(
    (c, i) => `${i + 1}. ${conditioner.kind === 'labels' ? classNames[preview.labels[i]] : c}`,
  );
  writeRunFile(join(out, 'samples.txt'), `${names.join('\n')}\n`);
  progressLine.log(`samples (${tag}): ${path}`);
  return path;
}
