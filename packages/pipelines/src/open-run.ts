import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  type BackendName,
  CheckpointError,
  ConfigError,
  type DiffusionLevel,
  type DiffusionModel,
  type ParamLookup,
} from '@matryoshka-ts/core';
import type { ImageDataset } from '@matryoshka-ts/data';
import { bundledDataset } from './data-source.js';
import { NestedUNet, nestedUNetSpecs, paramsFrom, resolveConfig } from '@matryoshka-ts/nested-unet';
import type { LevelSchedules } from '@matryoshka-ts/schedules';
import type { Conditioner } from './conditioning.js';
import {
  type RunKind,
  type TrainConfig,
  levelSchedulesOf,
  modelConfigOf,
  parseTrainConfig,
  runKindOf,
} from './config.js';
import { type GenerateOptions, type LevelSamples, generate } from './generate.js';
import { openConditioner } from './frozen-encoder.js';
import { levelsOf, phaseLevel, phaseModelConfig } from './phases.js';
import { type TrainProgress, loadCheckpoint, nonFiniteTensors, readCheckpointInfo } from './run-checkpoint.js';
import { requireBackend } from './require-backend.js';
import { openStagedRun } from './open-staged-run.js';
import { readRunManifest } from './run-manifest.js';

/** How a run is sampled: `generate`'s options without what the run knows itself. */
export type RunGenerateOptions = Omit<GenerateOptions, 'prediction' | 'lowRes'> & {
  /** A cascade's augmentation level of each low-resolution input (default: the run's `augLevel`). */
  augLevel?: number;
};

/** A trained model ready to sample: what `mdm-train sample` and `mdm-eval` load from a run. */
export interface OpenRun {
  /** mdm, simple, cascaded or latent. */
  kind: RunKind;
  /** The checkpoint file read (a multi-stage run's: its last stage's). */
  checkpoint: string;
  /** The run's config (a multi-stage run's last stage's: the sampling and loss settings it shares). */
  config: TrainConfig;
  progress: TrainProgress;
  /** The denoising network (a multi-stage run's last stage). */
  model: DiffusionModel;
  /** What `generate` returns, outermost first: each output's resolution, channels and frames. */
  levels: DiffusionLevel[];
  /** Samples every output of the run (a cascade's stages in turn; a latent run's decoded images). */
  generate(options: RunGenerateOptions): Promise<LevelSamples[]>;
  /** Network evaluations per sample for `steps` sampling steps (guidance doubles each). */
  functionEvaluations(steps: number, guidance: number): number;
  /** Training steps of the diffusion model(s): a cascade's stages summed (its autoencoder's not counted). */
  trainingSteps: number;
  /** Trainable parameters of the diffusion model(s); a latent run's autoencoder is counted apart. */
  paramCount: number;
  autoencoderParamCount?: number;
  /** Training wall time in seconds (every stage; a latent run's autoencoder apart), when recorded. */
  trainSeconds?: number;
  autoencoderSeconds?: number;
  /** The weights sampled with (EMA unless `ema: false`). */
  params: ParamLookup;
  /** One noise schedule per level of `model`, outermost first. */
  schedules: LevelSchedules;
  conditioner: Conditioner;
  /** Resolutions of `model`'s levels, outermost first. */
  resolutions: number[];
  /** Encodes captions into a frozen encoder's cache before `generate` reads them (no-op otherwise). */
  prepare(captions: string[]): Promise<void>;
  /** The run's data set, at the full model's resolution as in training (captions, labels, reference images). */
  dataset(): ImageDataset;
  dispose(): void;
}

/** The checkpoint a path names: a run directory's checkpoint.safetensors, or the file itself. */
export function runCheckpointPath(path: string): string {
  if (!existsSync(path)) throw new CheckpointError(`no run or checkpoint at ${path}`, { code: 'CHECKPOINT_MISSING' });
  if (!statSync(path).isDirectory()) return path;
  // A multi-stage run: its last diffusion stage's checkpoint (the one sampled last).
  const manifest = readRunManifest(path);
  const last = manifest?.stages.filter((s) => s.kind === 'diffusion').at(-1);
  return join(last ? join(path, last.dir) : path, 'checkpoint.safetensors');
}

/** The backend a run's config names (from the checkpoint's header): what a program starts before `openRun`. */
export function runBackend(path: string): BackendName {
  return readCheckpointInfo(runCheckpointPath(path)).config.backend;
}

/** Weights with NaN or Inf sample noise: refuse them naming the tensors, or warn when asked to go on. */
function refuseNonFinite(file: string, group: string, weights: Map<string, Float32Array>, allow: boolean): void {
  const bad = nonFiniteTensors(weights);
  if (bad.length === 0) return;
  const list = bad
    .slice(0, 3)
    .map((b) => `'${group}/${b.name}' (${b.count} of ${b.size} values)`)
    .join(', ');
  const more = bad.length > 3 ? `, and ${bad.length - 3} more` : '';
  const what = bad.length === 1 ? 'tensor holds' : 'tensors hold';
  const text = `${file}: ${bad.length} weight ${what} NaN or Inf: ${list}${more}`;
  if (!allow) throw new CheckpointError(`${text}; samples would be noise (pass --allow-nonfinite to sample anyway)`);
  process.stderr.write(`warning: ${text}; sampling anyway (--allow-nonfinite)\n`);
}

/**
 * Opens a run directory (its checkpoint.safetensors) or one checkpoint/snapshot file on the active
 * backend, and builds the model of the phase the checkpoint was written in.
 */
export interface OpenRunOptions {
  /** Sample with the EMA weights (default) or the raw ones. */
  ema?: boolean;
  /** Open weights holding NaN or Inf anyway (with a warning) instead of refusing them. */
  allowNonFinite?: boolean;
}

export async function openRun(path: string, options: OpenRunOptions = {}): Promise<OpenRun> {
  requireBackend();
  const manifest = existsSync(path) && statSync(path).isDirectory() ? readRunManifest(path) : undefined;
  if (manifest) return openStagedRun(path, manifest, (stage) => openRun(stage, options));
  const file = runCheckpointPath(path);
  // The header first: the model it describes says which tensors to read (no optimizer state, nothing unused).
  const info = readCheckpointInfo(file);
  const config = parseTrainConfig(info.config);
  const full = modelConfigOf(config);
  const from = phaseLevel(full, config.phases[info.progress.phase], info.progress.phase);
  const modelConfig = phaseModelConfig(full, from);
  const all = levelsOf(full).map((l) => l.resolution);
  const ema = options.ema ?? true;
  const names = new Set(nestedUNetSpecs(modelConfig).map((s) => s.name));
  const ckpt = loadCheckpoint(file, { groups: [ema ? 'ema' : 'params'], names });
  const weights = ema ? ckpt.values.ema : ckpt.values.params;
  if (weights.size === 0) {
    throw new CheckpointError(
      `${file} holds no ${ema ? 'EMA' : 'raw'} weights${ema ? '' : ' (snapshots keep only the EMA weights)'}`,
    );
  }
  refuseNonFinite(file, ema ? 'ema' : 'model', weights, options.allowNonFinite ?? false);
  const model = new NestedUNet(modelConfig, { weights });
  let dataset: ImageDataset | undefined;
  const conditioner = await openConditioner(config, full, (line) => process.stderr.write(`${line}\n`));
  const params = paramsFrom(model.params);
  const schedules = levelSchedulesOf(config).slice(from);
  return {
    kind: runKindOf(config),
    checkpoint: file,
    config,
    progress: ckpt.progress,
    model,
    levels: [...model.levels],
    generate: (options) => {
      if (config.stage?.kind === 'upsampler')
        throw new ConfigError(
          `${file}: a super-resolution stage samples through its cascade: open the run's directory`,
        );
      return generate(model, params, schedules, conditioner, { ...options, prediction: config.loss.prediction });
    },
    functionEvaluations: (steps, guidance) => steps * (guidance !== 1 && conditioner.kind !== 'none' ? 2 : 1),
    trainingSteps: ckpt.progress.step,
    paramCount: model.paramCount,
    trainSeconds: ckpt.progress.seconds,
    params,
    schedules,
    conditioner,
    prepare: async (captions) => {
      if (conditioner.kind === 'text' && conditioner.prepare) await conditioner.prepare(['', ...captions]);
    },
    resolutions: all.slice(from),
    dataset: () => {
      // A streamed source (ImageNet, CC12M, WebVid) is not loaded whole: prompts and references must be given.
      if (config.data.source !== 'bundled') {
        throw new ConfigError(
          `the run trained on data.source ${config.data.source}, which is not loaded as a whole: ` +
            'give prompts (--prompt / --prompts) and a reference (--reference) explicitly',
        );
      }
      // Decoded once per opened run: a sweep asks for it at every guidance weight.
      dataset ??= bundledDataset(config, all[0], resolveConfig(full).levels[0].frames);
      return dataset;
    },
    // The model's variables only: other variables of the process (a run being trained) stay.
    dispose: () => model.dispose(),
  };
}
