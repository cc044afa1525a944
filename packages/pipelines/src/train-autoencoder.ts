import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  AutoencoderKL,
  type AutoencoderTrainState,
  AutoencoderTrainStep,
  Lpips,
  PatchDiscriminator,
  loadAutoencoder,
  saveAutoencoder,
} from '@matryoshka-ts/autoencoder';
import { SafetensorsFile, type TensorToWrite, toFloat32, writeSafetensors } from '@matryoshka-ts/checkpoint';
import { CheckpointError, Rng, type RngState } from '@matryoshka-ts/core';
import { type DataPosition, nextBatch } from '@matryoshka-ts/data';
import type { TrainConfig } from './config.js';
import { latentDataset } from './latent-data.js';
import { ProgressLine, Throughput, formatDuration } from './progress.js';
import type { AutoencoderStage } from './stages.js';
import { appendRunFile, writeRunFile } from './run-files.js';

const FORMAT = 'matryoshka-ts/autoencoder-checkpoint/1';
const CHECKPOINT = 'checkpoint.safetensors';
const WEIGHTS = 'autoencoder.safetensors';

/** What a resumed autoencoder stage needs besides tensors. */
export interface AutoencoderProgress {
  step: number;
  rng: RngState;
  data: DataPosition;
  /** Training wall time so far (seconds, every session). */
  seconds: number;
  train: Omit<AutoencoderTrainState, 'ae' | 'disc'> & { aeStep: number; discStep?: number };
  badTotal: number;
}

/** The autoencoder stage's progress from its checkpoint (undefined when there is none, e.g. pretrained weights). */
export function readAutoencoderProgress(dir: string): AutoencoderProgress | undefined {
  const path = join(dir, CHECKPOINT);
  if (!existsSync(path)) return undefined;
  const file = SafetensorsFile.open(path);
  try {
    return JSON.parse(file.metadata.progress) as AutoencoderProgress;
  } finally {
    file.close();
  }
}

function tensorsOf(prefix: string, values: Map<string, Float32Array>, shapes: Map<string, number[]>) {
  return [...values].map(([name, data]): [string, TensorToWrite] => [
    `${prefix}/${name}`,
    { dtype: 'F32', shape: shapes.get(name) ?? [data.length], data },
  ]);
}

/**
 * A latent run's first stage: the KL autoencoder, trained on the run's images with CompVis's loss
 * (checkpointed atomically, resumable), or pretrained weights checked against the run's config.
 * Ends with `autoencoder.safetensors` in `dir` (CompVis names, config in its metadata).
 */
export async function trainAutoencoderStage(
  stage: AutoencoderStage,
  config: TrainConfig,
  dir: string,
  options: { resume: boolean; steps?: number },
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const log = new ProgressLine();
  const weightsPath = join(dir, WEIGHTS);
  if (stage.weights) {
    // Missing keys, another z width or other shapes fail here, each key listed.
    const ae = loadAutoencoder(stage.weights, { config: stage.config });
    saveAutoencoder(ae, weightsPath);
    log.log(`autoencoder: pretrained ${stage.weights} (${ae.paramCount.toLocaleString('en-US')} parameters)`);
    ae.dispose();
    return;
  }
  const settings = stage.train;
  const total = options.steps ?? settings.steps;
  const checkpointPath = join(dir, CHECKPOINT);
  const previous = options.resume ? readAutoencoderProgress(dir) : undefined;
  if (previous && previous.step >= total && existsSync(weightsPath)) {
    log.log(`autoencoder: done (${previous.step} steps), kept`);
    return;
  }
  const dataset = latentDataset(config, stage.imageResolution);
  const ae = new AutoencoderKL(stage.config, { seed: config.seed });
  const gan = settings.discriminator;
  const disc = gan
    ? new PatchDiscriminator({ inChannels: 3, ndf: gan.ndf, layers: gan.layers }, { seed: config.seed + 1 })
    : undefined;
  const lpips = settings.lpips ? Lpips.fromOnnx(settings.lpips) : undefined;
  const step = new AutoencoderTrainStep(ae, {
    lr: settings.lr,
    klWeight: settings.klWeight,
    perceptualWeight: settings.perceptualWeight,
    lpips,
    discriminator: disc && gan ? { model: disc, start: gan.start, weight: gan.weight } : undefined,
  });
  const progress: AutoencoderProgress = previous ?? {
    step: 0,
    rng: new Rng(config.seed + 3).getState(),
    data: { epoch: 0, cursor: 0 },
    seconds: 0,
    train: { globalStep: 0, logvar: 0, aeStep: 0 },
    badTotal: 0,
  };
  if (previous) restore(checkpointPath, ae, disc, step);
  else writeRunFile(join(dir, 'metrics.jsonl'), '');
  log.log(
    `autoencoder: ${ae.paramCount.toLocaleString('en-US')} parameters (f = ${ae.factor}, ` +
      `${stage.config.embedDim} latent channels), ${total} steps of batch ${settings.batchSize} ` +
      `on ${dataset.size} images${previous ? `, resuming at step ${previous.step}` : ''}`,
  );
  const rng = new Rng(progress.rng);
  const speed = new Throughput();
  const started = performance.now();
  const secondsBefore = progress.seconds;
  const save = () => {
    const state = step.state();
    progress.rng = rng.getState();
    progress.seconds = secondsBefore + (performance.now() - started) / 1000;
    progress.train = {
      globalStep: state.globalStep,
      logvar: state.logvar,
      aeStep: state.ae.step,
      discStep: state.disc?.step,
    };
    const shapes = new Map([...ae.specs, ...(disc?.specs ?? [])].map((s) => [s.name, s.shape]));
    for (const [name, v] of disc?.buffers ?? []) shapes.set(name, v.shape);
    const tensors = new Map<string, TensorToWrite>([
      ...tensorsOf('model', ae.getWeights(), shapes),
      ...tensorsOf('adam.m', state.ae.m, shapes),
      ...tensorsOf('adam.v', state.ae.v, shapes),
      ...(disc ? tensorsOf('disc', disc.getWeights(), shapes) : []),
      ...(state.disc ? tensorsOf('disc.adam.m', state.disc.m, shapes) : []),
      ...(state.disc ? tensorsOf('disc.adam.v', state.disc.v, shapes) : []),
    ]);
    writeSafetensors(checkpointPath, tensors, { format: FORMAT, progress: JSON.stringify(progress) });
  };
  try {
    while (progress.step < total) {
      const batch = nextBatch(dataset, settings.batchSize, config.seed, progress.data);
      const result = step.run(batch.images, rng);
      batch.images.dispose();
      progress.step += 1;
      speed.tick();
      if (result.skipped) {
        progress.badTotal += 1;
        log.log(`autoencoder step ${progress.step}: ${result.skipped}; update skipped`);
      }
      appendRunFile(join(dir, 'metrics.jsonl'), `${JSON.stringify({ step: progress.step, ...result })}\n`);
      const rate = speed.perSecond();
      const eta = Number.isFinite(rate) ? ` | ETA ${formatDuration((total - progress.step) / rate)}` : '';
      log.update(
        `autoencoder step ${progress.step}/${total} | loss ${result.loss.toFixed(4)} | ` +
          `rec ${result.rec.toFixed(4)} | kl ${result.kl.toFixed(1)}${eta}`,
      );
      if (!result.skipped && progress.step % config.checkpointEvery === 0) save();
    }
    log.done();
    save();
    saveAutoencoder(ae, weightsPath);
    log.log(`autoencoder: done in ${formatDuration(progress.seconds)} → ${weightsPath}`);
  } finally {
    step.dispose();
    ae.dispose();
    disc?.dispose();
    lpips?.dispose();
  }
}

/** Loads an autoencoder stage's checkpoint into the models and the training step. */
function restore(
  path: string,
  ae: AutoencoderKL,
  disc: PatchDiscriminator | undefined,
  step: AutoencoderTrainStep,
): void {
  const file = SafetensorsFile.open(path);
  try {
    if (file.metadata.format !== FORMAT) throw new CheckpointError(`${path} is not an autoencoder stage checkpoint`);
    const groups = new Map<string, Map<string, Float32Array>>();
    for (const key of file.names) {
      const slash = key.lastIndexOf('/');
      const group = key.slice(0, slash);
      if (!groups.has(group)) groups.set(group, new Map());
      groups.get(group)!.set(key.slice(slash + 1), toFloat32(file.read(key).data));
    }
    const progress = JSON.parse(file.metadata.progress) as AutoencoderProgress;
    const get = (g: string) => groups.get(g) ?? new Map<string, Float32Array>();
    ae.setWeights(get('model'));
    if (disc) disc.setWeights(get('disc'));
    const { aeStep, discStep, ...train } = progress.train;
    step.load({
      ...train,
      ae: { step: aeStep, m: get('adam.m'), v: get('adam.v') },
      ...(disc ? { disc: { step: discStep ?? 0, m: get('disc.adam.m'), v: get('disc.adam.v') } } : {}),
    });
  } finally {
    file.close();
  }
}
