import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Rng, initBackend } from '@matryoshka-ts/core';
import { type ImageDataset, type SkipCounts, loadEmojiDataset } from '@matryoshka-ts/data';
import { downsample, drawTrainingExample, firstSamples, multiResolutionLoss, samplesPerLevel, vdmLossWeights } from '@matryoshka-ts/losses';
import { NestedUNet, paramsFrom, resolveConfig } from '@matryoshka-ts/nested-unet';
import { type Schedule, scheduleByName, shiftFactor, shiftSchedule } from '@matryoshka-ts/schedules';
import { type TrainConfig, modelConfigOf } from './config.js';
import { conditionBatch } from './conditioning.js';
import { openConditioner } from './frozen-encoder.js';
import { type TrainingData, openTrainingData } from './data-source.js';
import { generate } from './generate.js';
import { sampleGridPng } from './grid.js';
import { Adam, clipByGlobalNorm, emaDecay, globalNorm, learningRate, updateEma } from './optim.js';
import { nestDeeper, phaseBounds, phaseModelConfig } from './phases.js';
import { lineChartSvg, smooth } from './plot.js';
import { ProgressLine, Throughput, formatDuration } from './progress.js';
import { type TrainProgress, loadCheckpoint, saveCheckpoint, snapshotPath } from './train-state.js';

export interface TrainOptions {
  /** Run directory (created if needed). */
  out: string;
  /** Continue the run in `out` from its checkpoint. */
  resume?: boolean;
  /** Total steps of the run (default: the sum of the phases' steps). */
  steps?: number;
  /** Called after every step with its metrics and the number of live tensors (for leak checks and UIs). */
  onStep?: (metrics: StepMetrics, liveTensors: number) => void;
}

export interface TrainResult {
  steps: number;
  finalLoss: number;
  badSteps: number;
  seconds: number;
  /** Path of the last sample grid written. */
  samples?: string;
}

/** One row of metrics.jsonl. */
export interface StepMetrics {
  step: number;
  phase: number;
  resolution: number;
  loss: number;
  mse: number[];
  lr: number;
  gradNorm: number;
  stepsPerSec: number;
  /** Why this step's update was skipped (a non-finite loss or gradient). */
  skipped?: string;
  /** Streamed sources: inputs skipped so far in the run (up to its data position), by reason; absent while none. */
  dataSkipped?: SkipCounts;
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

/** Per-level schedules of the full model: the base schedule shifted by (size / innermost size)^power. */
export function levelSchedules(config: TrainConfig, resolutions: number[]): Schedule[] {
  const base = scheduleByName(config.schedule.name, config.schedule.steps);
  const innermost = resolutions[resolutions.length - 1];
  return resolutions.map((r) => shiftSchedule(base, shiftFactor(r / innermost, config.schedule.shiftPower)));
}

export function loadDataset(config: TrainConfig, resolution: number): ImageDataset {
  return loadEmojiDataset({ resolution, skinTones: config.data.skinTones, categories: config.data.categories });
}

// Moved to data-source.ts beside the streamed sources' preview; re-exported for existing importers.
export { previewConditions } from './data-source.js';

interface PhaseModel {
  model: NestedUNet;
  ema: Map<string, tf.Variable>;
  adam: Adam;
  from: number;
}

function copyVariables(values: Map<string, Float32Array>, shapes: Map<string, number[]>): Map<string, tf.Variable> {
  return new Map([...values].map(([k, v]) => [k, tf.variable(tf.tensor(v, shapes.get(k)!), false)]));
}

/**
 * Trains an MDM: progressive phases (each adding outer levels, initialised from the previous
 * phase's weights and EMA), Adam with warm-up and gradient clipping, EMA, condition dropout,
 * NaN-skipping, atomic checkpoints, metrics.jsonl, a loss curve (loss.svg) and sample grids.
 */
export async function train(config: TrainConfig, options: TrainOptions): Promise<TrainResult> {
  // The data is opened first, so a bad path fails before any work, and closed (decode workers
  // terminated) however the run ends.
  const data = await openTrainingData(config, resolveConfig(modelConfigOf(config)).levels[0].resolution);
  try {
    return await runTraining(config, options, data);
  } finally {
    await data.close();
  }
}

async function runTraining(config: TrainConfig, options: TrainOptions, data: TrainingData): Promise<TrainResult> {
  const out = options.out;
  mkdirSync(out, { recursive: true });
  const checkpointPath = join(out, 'checkpoint.safetensors');
  const metricsPath = join(out, 'metrics.jsonl');
  const progressLine = new ProgressLine();
  await initBackend({ backend: config.backend });

  const full = modelConfigOf(config);
  const fullLevels = resolveConfig(full).levels;
  const resolutions = fullLevels.map((l) => l.resolution);
  const schedules = levelSchedules(config, resolutions);
  const conditioner = await openConditioner(config, full, (line) => progressLine.log(line));
  if (conditioner.kind === 'labels' && data.classNames.length > conditioner.numClasses) {
    throw new Error(`the data has ${data.classNames.length} classes but the model's label conditioning has ${conditioner.numClasses}`);
  }
  progressLine.log(`data: ${data.description}`);
  const preview = await data.preview(config.sampling.n);
  // A frozen ONNX encoder encodes every caption once, before training (later runs read its cache).
  if (conditioner.kind === 'text' && conditioner.prepare) await conditioner.prepare(['', ...preview.captions, ...(await data.captions())]);

  let progress: TrainProgress;
  let restored: ReturnType<typeof loadCheckpoint> | undefined;
  const history: Array<[number, number]> = [];
  if (options.resume) {
    restored = loadCheckpoint(checkpointPath);
    progress = restored.progress;
    // Steps logged after the checkpoint are replayed by the resumed run: drop them.
    if (existsSync(metricsPath)) {
      const kept = readFileSync(metricsPath, 'utf8').split('\n').filter((line) => line && (JSON.parse(line) as StepMetrics).step <= progress.step);
      writeFileSync(metricsPath, kept.map((l) => `${l}\n`).join(''));
      for (const l of kept) {
        const m = JSON.parse(l) as StepMetrics;
        if (!m.skipped) history.push([m.step, m.loss]);
      }
    }
    progressLine.log(`resuming ${out} at step ${progress.step} (phase ${progress.phase + 1}/${config.phases.length})`);
  } else {
    progress = { step: 0, phase: 0, phaseStep: 0, rng: new Rng(config.seed).getState(), data: { epoch: 0, cursor: 0 }, adamStep: 0, emaUpdates: 0, badInARow: 0, badTotal: 0 };
    writeFileSync(metricsPath, '');
  }
  writeFileSync(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);

  const skippedBefore: SkipCounts = { ...(progress.dataSkipped ?? {}) };
  const total = options.steps ?? config.phases.reduce((n, p) => n + p.steps, 0);
  const bounds = phaseBounds(config, total);
  const rng = new Rng(progress.rng);
  const started = performance.now();
  const speed = new Throughput();
  let finalLoss = Number.NaN;
  let current: PhaseModel | undefined;
  let lastSamples: string | undefined;

  const buildPhase = (index: number, previous: PhaseModel | undefined): PhaseModel => {
    const from = resolutions.indexOf(config.phases[index].resolution);
    const model = new NestedUNet(phaseModelConfig(full, from), { seed: config.seed + index });
    const shapes = new Map(model.specs.map((s) => [s.name, s.shape]));
    let ema: Map<string, tf.Variable>;
    const adam = new Adam(config.optimizer);
    if (restored && restored.progress.phase === index) {
      model.setWeights(restored.values.params);
      ema = copyVariables(restored.values.ema, shapes);
      adam.load(restored.progress.adamStep, restored.values.adamM, restored.values.adamV, shapes);
      restored = undefined;
    } else {
      if (previous) {
        // Progressive training: the previous phase's model is this one's inner part.
        const added = previous.from - from;
        model.setWeights(nestDeeper(previous.model.getWeights(), added));
        const emaValues = new Map([...model.getWeights()]);
        for (const [k, v] of nestDeeper(new Map([...previous.ema].map(([n, t]) => [n, t.dataSync() as Float32Array])), added)) emaValues.set(k, Float32Array.from(v));
        ema = copyVariables(emaValues, shapes);
        progressLine.log(`phase ${index + 1}: ${config.phases[index].resolution} px, inner ${resolutions[previous.from]} px initialised from phase ${index}`);
      } else ema = copyVariables(model.getWeights(), shapes);
      progress.adamStep = 0;
      progress.emaUpdates = 0;
    }
    previous?.model.dispose();
    previous?.adam.dispose();
    for (const v of previous?.ema.values() ?? []) v.dispose();
    return { model, ema, adam, from };
  };

  const writeSamples = (tag: string) => {
    if (!current) return;
    const cond = preview;
    const images = generate(current.model, paramsFrom(current.ema), schedules.slice(current.from), conditioner, {
      captions: cond.captions,
      labels: cond.labels,
      steps: config.sampling.steps,
      sampler: config.sampling.sampler,
      eta: config.sampling.eta,
      guidance: config.sampling.guidance,
      threshold: config.sampling.threshold,
      prediction: config.loss.prediction,
      seed: config.seed + 12345,
      onStep: (i, all) => progressLine.update(`sampling ${tag}: step ${i + 1}/${all}`),
    });
    const png = sampleGridPng(images);
    const path = join(out, 'samples.png');
    writeFileSync(join(out, `samples-${tag}.png`), png);
    writeFileSync(path, png);
    writeFileSync(join(out, 'samples.txt'), `${cond.captions.map((c, i) => `${i + 1}. ${conditioner.kind === 'labels' ? data.classNames[cond.labels[i]] : c}`).join('\n')}\n`);
    lastSamples = path;
    progressLine.log(`samples (${tag}): ${path}`);
  };

  const writePlot = () => {
    const window = Math.max(1, Math.floor(history.length / 50));
    const svg = lineChartSvg(
      [
        { name: 'loss', points: history, colour: '#9bb' },
        { name: `loss (mean of ${window})`, points: smooth(history, window), colour: '#c33' },
      ],
      { title: 'training loss', xLabel: 'step', yLabel: 'loss (log scale)' },
    );
    writeFileSync(join(out, 'loss.svg'), svg);
  };

  const checkpoint = () => {
    if (!current) return;
    progress.rng = rng.getState();
    saveCheckpoint(
      checkpointPath,
      { params: current.model.params, ema: current.ema, adamM: current.adam.m, adamV: current.adam.v },
      { ...progress, adamStep: current.adam.step },
      config,
    );
  };

  const snapshot = (stepNo: number) => {
    if (!current) return;
    mkdirSync(join(out, 'snapshots'), { recursive: true });
    const empty = new Map<string, tf.Tensor>();
    saveCheckpoint(snapshotPath(out, stepNo), { params: empty, ema: current.ema, adamM: empty, adamV: empty }, { ...progress, rng: rng.getState() }, config);
  };

  for (let p = progress.phase; p < config.phases.length && progress.step < total; p++) {
    if (p !== progress.phase) {
      progress.phase = p;
      progress.phaseStep = 0;
    }
    current = buildPhase(p, current);
    const phase = config.phases[p];
    const levels = current.model.config.levels;
    const phaseRes = levels.map((l) => l.resolution);
    const tables = schedules.slice(current.from).map((s) => s.gammasF32);
    const weights = config.loss.weights?.slice(current.from);
    const ratio = config.loss.mixedRatio?.slice(current.from);
    const vars = [...current.model.params.entries()];
    const seen = ratio ? samplesPerLevel(ratio, phase.batchSize) : phaseRes.map(() => phase.batchSize);

    while (progress.step < bounds[p].end) {
      const stepNo = progress.step + 1;
      const batch = await data.next(phase.batchSize, progress.data);
      const images = batch.images.shape[1] === phaseRes[0] ? batch.images : downsample(batch.images, phaseRes[0], config.loss.lowRes);
      const cond = conditionBatch(conditioner, batch.captions, batch.labels, config.conditioning.dropout, rng);
      const example = drawTrainingExample(images, { tables, resolutions: phaseRes, downsample: config.loss.lowRes }, rng);
      const sampleWeights = config.loss.vdmWeights ? vdmLossWeights(tables[0], example.times) : undefined;
      let mse: tf.Tensor1D[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const outputs = current!.model.forward({ x: firstSamples(example.xt, seen), times: example.times, ...cond }, { training: true });
        const result = multiResolutionLoss(outputs, example, { prediction: config.loss.prediction, target: config.loss.target, weights, mixedRatio: ratio, sampleWeights });
        mse = result.mse.map((m) => tf.keep(m));
        return result.loss;
      }, vars.map(([, v]) => v));
      const loss = value.dataSync()[0];
      const mseMeans = mse.map((m) => (m.size ? tf.tidy(() => tf.mean(m).dataSync()[0]) : Number.NaN));
      tf.dispose([value, batch.images, images, ...mse]);
      tf.dispose(example);
      tf.dispose([cond.tokens, cond.mask, cond.labels].filter((t) => t !== undefined) as tf.Tensor[]);

      const gradMap = new Map(vars.map(([name, v]) => [name, grads[v.name]]));
      let gradNorm = Number.NaN;
      let skipped: string | undefined;
      if (!Number.isFinite(loss)) skipped = 'non-finite loss';
      else {
        gradNorm = globalNorm(gradMap.values());
        if (!Number.isFinite(gradNorm)) skipped = 'non-finite gradient';
      }
      const lr = learningRate(current.adam.step + 1, config.optimizer.lr, config.optimizer.warmupSteps);
      if (skipped) {
        progress.badInARow += 1;
        progress.badTotal += 1;
        progressLine.log(`step ${stepNo}: ${skipped} (${loss}); update skipped (${progress.badInARow} in a row, ${progress.badTotal} in total)`);
      } else {
        progress.badInARow = 0;
        clipByGlobalNorm(gradMap, gradNorm, config.optimizer.clipNorm);
        current.adam.update(current.model.params, gradMap, lr);
        progress.emaUpdates += 1;
        updateEma(current.ema, current.model.params, emaDecay(progress.emaUpdates, config.ema.decay, config.ema.warmup));
        finalLoss = loss;
        history.push([stepNo, loss]);
      }
      tf.dispose([...gradMap.values()]);
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
        mse: mseMeans,
        lr,
        gradNorm,
        stepsPerSec: speed.perSecond(),
        ...(skipped ? { skipped } : {}),
        ...(dataSkipped ? { dataSkipped } : {}),
      };
      appendFileSync(metricsPath, `${JSON.stringify(metrics)}\n`);
      options.onStep?.(metrics, tf.memory().numTensors);
      const rate = speed.perSecond();
      progressLine.update(
        `step ${stepNo}/${total} | phase ${p + 1}/${config.phases.length} (${phase.resolution} px) | loss ${loss.toFixed(4)} | ${Number.isFinite(rate) ? `${rate.toFixed(2)} steps/s | ${(rate * phase.batchSize).toFixed(1)} img/s | ETA ${formatDuration((total - stepNo) / rate)}` : 'measuring speed…'}${progress.badTotal ? ` | skipped ${progress.badTotal} steps` : ''}${dataProgress(dataStats?.imagesPerSecond, runSkipped)}`,
      );
      if (progress.badInARow >= config.maxBadSteps) {
        progressLine.done();
        throw new Error(`${progress.badInARow} non-finite losses in a row at step ${stepNo}: stopping. The last good checkpoint (${checkpointPath}) is intact; lower optimizer.lr or check the data.`);
      }
      if (stepNo % config.plotEvery === 0) writePlot();
      // A skipped step never overwrites the last good checkpoint.
      if (!skipped && stepNo % config.checkpointEvery === 0) checkpoint();
      if (config.snapshotEvery > 0 && stepNo % config.snapshotEvery === 0) snapshot(stepNo);
      if (config.sampling.every > 0 && stepNo % config.sampling.every === 0 && stepNo < total) writeSamples(`step${stepNo}`);
    }
  }
  progressLine.done();
  checkpoint();
  writePlot();
  writeSamples('final');
  for (const v of current?.ema.values() ?? []) v.dispose();
  current?.adam.dispose();
  current?.model.dispose();
  const seconds = (performance.now() - started) / 1000;
  progressLine.log(`done: ${progress.step} steps in ${formatDuration(seconds)}, final loss ${finalLoss.toFixed(4)}${progress.badTotal ? `, ${progress.badTotal} steps skipped` : ''}`);
  return { steps: progress.step, finalLoss, badSteps: progress.badTotal, seconds, samples: lastSamples };
}
