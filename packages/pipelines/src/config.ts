import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { BACKEND_NAMES, ConfigError } from '@matryoshka-ts/core';
import {
  type NestedUNetConfig,
  PRESET_NAMES,
  nestedUNetConfigSchema,
  preset as modelPreset,
  resolveConfig,
} from '@matryoshka-ts/nested-unet';
import { type LevelSchedules, levelScales, levelSchedules, scheduleByName } from '@matryoshka-ts/schedules';

const pos = z.number().int().positive();
const fraction = z.number().min(0).max(1);

/** One stage of progressive training: train the levels up to `resolution` for `steps` steps. */
const phaseSchema = z.strictObject({
  /** The highest resolution trained in this phase (a level of the model). */
  resolution: pos,
  batchSize: pos,
  steps: pos,
});

/** The whole training configuration; every field has a default except where noted. */
export const trainConfigSchema = z.strictObject({
  /** A model preset name (MDM-S64, cc12m-256, …) or a NestedUNet config. */
  model: z.union([z.string(), nestedUNetConfigSchema]),
  data: z
    .strictObject({
      /**
       * bundled: the Twemoji set shipped with the package (in memory, the default run);
       * imagenet: synset folders or tars; cc12m: img2dataset webdataset shards or the official TSV
       * index; webvid: the WebVid CSV plus downloaded videos (each clip's frames train as images).
       */
      source: z.enum(['bundled', 'imagenet', 'cc12m', 'webvid']).default('bundled'),
      /**
       * imagenet: folder of synset folders/tars or a pattern; cc12m: shard folder/pattern, or the index
       * TSV (format tsv); webvid: the CSV.
       */
      path: z.string().min(1).optional(),
      /** imagenet: file of wnids fixing the label order (LOC_synset_mapping.txt works). */
      synsets: z.string().min(1).optional(),
      /** imagenet: class names for captions (LOC_synset_mapping.txt, one name per line, or a JSON class index). */
      classNames: z.string().min(1).optional(),
      /** webvid: the folder of downloaded videos. */
      videos: z.string().min(1).optional(),
      /** cc12m: img2dataset webdataset shards (default) or the official code's TSV index. */
      format: z.enum(['webdataset', 'tsv']).optional(),
      /** Mirror a random half of the samples (seeded, resumable); default false for images, true for video. */
      flip: z.boolean().optional(),
      /** Samples mixed across consecutive shards by the shuffle buffer (streamed sources). */
      shuffleBuffer: z.number().int().nonnegative().default(1000),
      /** Decode worker threads (default min(4, cores − 1)). */
      workers: pos.optional(),
      /** This process's rank among `world` processes reading disjoint shards. */
      rank: z.number().int().nonnegative().default(0),
      world: pos.default(1),
      /** bundled: include skin-tone variants of the emoji (3,786 images instead of 1,911). */
      skinTones: z.boolean().default(true),
      /** bundled: keep only these emoji categories (empty: all 10). */
      categories: z.array(z.string()).default([]),
    })
    .prefault({}),
  conditioning: z
    .strictObject({
      /** Text (captions through the encoder), class labels, or none. Must match the model. */
      kind: z.enum(['text', 'labels', 'none']).default('text'),
      /** Probability of replacing the condition by the null one (empty caption / null label), for guidance. */
      dropout: fraction.default(0.1),
      /**
       * The frozen text encoder: the bundled offline `hashed-words`, or an ONNX export (FLAN-T5's
       * encoder, a CLIP text tower) in a local directory, whose features are cached on disk.
       */
      encoder: z
        .union([
          z.strictObject({
            kind: z.literal('hashed-words').default('hashed-words'),
            width: pos.default(64),
            maxTokens: pos.default(16),
          }),
          z.strictObject({
            kind: z.literal('onnx'),
            /** The export's directory (model + tokenizer files). */
            path: z.string().min(1),
            /** Its feature width D (2048 for FLAN-T5 XL); checked when the model loads. */
            width: pos,
            maxTokens: pos.default(128),
            /** Feature cache directory (default ~/.cache/matryoshka-ts/text-features). */
            cache: z.string().optional(),
            device: z.enum(['cpu', 'cuda']).default('cpu'),
          }),
        ])
        .prefault({}),
    })
    .prefault({}),
  schedule: z
    .strictObject({
      name: z.enum(['cosine', 'cosine-logsnr', 'linear']).default('cosine'),
      steps: pos.default(1000),
      /** Per-level shift SNR / s^p, s = the level's size over the innermost size. */
      shiftPower: z.number().min(0).default(1),
    })
    .prefault({}),
  loss: z
    .strictObject({
      prediction: z.enum(['eps', 'x0', 'v']).default('v'),
      target: z.enum(['eps', 'x0', 'v']).default('eps'),
      /** Per-level weights, level 0 first (default all 1: the paper's N_R/N_r on summed errors). */
      weights: z.array(z.number().nonnegative()).optional(),
      /** Mixed-resolution ratio a:b:… per level, level 0 first (default: every level sees every sample). */
      mixedRatio: z.array(z.number().positive()).optional(),
      /** How lower levels' clean images are made: average pooling (official code) or bilinear (paper). */
      lowRes: z.enum(['avgpool', 'bilinear']).default('avgpool'),
      vdmWeights: z.boolean().default(false),
    })
    .prefault({}),
  optimizer: z
    .strictObject({
      lr: z.number().positive().default(1e-4),
      beta1: fraction.default(0.9),
      beta2: fraction.default(0.99),
      eps: z.number().positive().default(1e-8),
      /** Linear warm-up of the learning rate from 0 (paper: 30k steps at full scale). */
      warmupSteps: z.number().int().nonnegative().default(1000),
      /** Gradient clipping by global norm (0 = off). */
      clipNorm: z.number().nonnegative().default(2),
    })
    .prefault({}),
  ema: z
    .strictObject({
      decay: fraction.default(0.9999),
      /** Use min(decay, (1 + n)/(10 + n)) at update n, so short runs still get a useful average. */
      warmup: z.boolean().default(true),
    })
    .prefault({}),
  phases: z.array(phaseSchema).min(1),
  sampling: z
    .strictObject({
      /** Write a sample grid every this many steps (0 = only at the end). */
      every: z.number().int().nonnegative().default(0),
      n: pos.default(16),
      steps: pos.default(250),
      sampler: z.enum(['ddpm', 'ddim']).default('ddpm'),
      eta: z.number().nonnegative().default(0),
      guidance: z.number().nonnegative().default(3),
      threshold: z.enum(['none', 'clip', 'dynamic', 'dynamic-deepfloyd']).default('dynamic'),
    })
    .prefault({}),
  /** Write a checkpoint every this many steps (and always at the end). */
  checkpointEvery: pos.default(500),
  /** Also keep the EMA weights every this many steps in snapshots/ (0 = never), for metric-vs-step curves. */
  snapshotEvery: z.number().int().nonnegative().default(0),
  /** Write the loss curve every this many steps. */
  plotEvery: pos.default(100),
  seed: z.number().int().nonnegative().default(0),
  backend: z.enum(BACKEND_NAMES).default('auto'),
  /** Stop after this many non-finite losses in a row. */
  maxBadSteps: pos.default(20),
});

export type TrainConfigInput = z.input<typeof trainConfigSchema>;
export type TrainConfig = z.output<typeof trainConfigSchema>;

/** The model config a training config names (a preset is expanded with the config's conditioning). */
export function modelConfigOf(config: TrainConfig): NestedUNetConfig {
  if (typeof config.model !== 'string') return config.model;
  if (!(PRESET_NAMES as readonly string[]).includes(config.model)) {
    throw new ConfigError(`config: model: unknown preset '${config.model}' (available: ${PRESET_NAMES.join(', ')})`);
  }
  const kind = config.conditioning.kind;
  return modelPreset(config.model, {
    conditioning: kind === 'text' ? { kind, featureDim: config.conditioning.encoder.width } : { kind },
  });
}

/**
 * The full model's noise schedules, level 0 first: the config's base schedule shifted per level by
 * (size / innermost size)^shiftPower. A phase's model uses the slice from its top level on.
 */
export function levelSchedulesOf(config: TrainConfig): LevelSchedules {
  const resolutions = resolveConfig(modelConfigOf(config)).levels.map((l) => l.resolution);
  const base = scheduleByName(config.schedule.name, config.schedule.steps);
  return levelSchedules(base, levelScales(resolutions), { power: config.schedule.shiftPower });
}

/** Validates a config (schema, then the model and phases against each other); errors name the field. */
export function parseTrainConfig(input: unknown): TrainConfig {
  const parsed = trainConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`config: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const config = parsed.data;
  const model = resolveConfig(modelConfigOf(config));
  const resolutions = model.levels.map((l) => l.resolution);
  const kind = config.conditioning.kind;
  if (kind === 'text' && !model.text)
    throw new ConfigError('config: conditioning.kind is text but the model has no text conditioning');
  if (kind === 'text' && model.text!.featureDim !== config.conditioning.encoder.width) {
    throw new ConfigError(
      `config: conditioning.encoder.width (${config.conditioning.encoder.width}) ` +
        `must equal the model's text featureDim (${model.text!.featureDim})`,
    );
  }
  if (kind === 'labels' && !model.labels)
    throw new ConfigError('config: conditioning.kind is labels but the model has no label conditioning');
  if (kind === 'none' && (model.text || model.labels))
    throw new ConfigError('config: conditioning.kind is none but the model is conditional');
  config.phases.forEach((phase, i) => {
    if (!resolutions.includes(phase.resolution))
      throw new ConfigError(
        `config: phases.${i}.resolution: ${phase.resolution} is not a level of the model (${resolutions.join(', ')})`,
      );
    if (i > 0 && phase.resolution < config.phases[i - 1].resolution)
      throw new ConfigError(`config: phases.${i}.resolution: phases must not go down in resolution`);
  });
  const levels = model.levels.length;
  if (config.loss.weights && config.loss.weights.length !== levels)
    throw new ConfigError(`config: loss.weights: needs ${levels} entries (one per level)`);
  if (config.loss.mixedRatio && config.loss.mixedRatio.length !== levels)
    throw new ConfigError(`config: loss.mixedRatio: needs ${levels} entries (one per level)`);
  // Every data source decodes RGB images; latent (4-channel) or grey models need their own data.
  if (model.imageChannels !== 3) {
    throw new ConfigError(
      'config: model.imageChannels: the data sources give RGB images (3 channels), ' +
        `the model takes ${model.imageChannels}`,
    );
  }
  if (config.data.source === 'bundled' && resolutions[0] > 64)
    throw new ConfigError("config: the bundled emoji images are 64 px; the model's top level is larger");
  checkDataConfig(config);
  return config;
}

/** Which `data` fields each source needs or accepts, checked before any file is opened. */
const SOURCE_FIELDS = {
  bundled: { needs: [], accepts: [] },
  imagenet: { needs: ['path'], accepts: ['path', 'synsets', 'classNames'] },
  cc12m: { needs: ['path'], accepts: ['path', 'format'] },
  webvid: { needs: ['path', 'videos'], accepts: ['path', 'videos'] },
} as const;

const FIELD_HELP: Record<string, string> = {
  path:
    'the data set (imagenet: folder of synset folders or tars; cc12m: folder or pattern of .tar shards, ' +
    'or the index TSV with format tsv; webvid: the CSV)',
  videos: 'the folder of downloaded WebVid videos',
};

function checkDataConfig(config: TrainConfig): void {
  const data = config.data;
  const fields = SOURCE_FIELDS[data.source];
  for (const field of fields.needs) {
    if (data[field] === undefined)
      throw new ConfigError(`config: data.${field}: required for data.source ${data.source}: ${FIELD_HELP[field]}`);
  }
  for (const field of ['path', 'synsets', 'classNames', 'videos', 'format'] as const) {
    if (data[field] !== undefined && !(fields.accepts as readonly string[]).includes(field))
      throw new ConfigError(`config: data.${field}: not used by data.source ${data.source}`);
  }
  if (data.rank >= data.world)
    throw new ConfigError(`config: data.rank: ${data.rank} must be below data.world (${data.world})`);
  if (config.conditioning.kind === 'labels' && (data.source === 'cc12m' || data.source === 'webvid')) {
    throw new ConfigError(
      `config: conditioning.kind is labels but data.source ${data.source} has captions, ` +
        'not class labels (use text, or imagenet / bundled)',
    );
  }
}

/** Sets `path` (dots between keys, numbers index arrays) to `value` (JSON if it parses, else a string). */
export function applyOverride(target: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set expects key=value, got '${assignment}'`);
  const keys = assignment.slice(0, eq).split('.');
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  let node: Record<string, unknown> = target;
  keys.slice(0, -1).forEach((key) => {
    if (node[key] === undefined || node[key] === null || typeof node[key] !== 'object') node[key] = {};
    node = node[key] as Record<string, unknown>;
  });
  node[keys[keys.length - 1]] = value;
}

/** Reads a JSON or YAML config file. */
export function readConfigFile(path: string): Record<string, unknown> {
  let data: unknown;
  try {
    const text = readFileSync(path, 'utf8');
    data = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path}: cannot read the config file (${(error as Error).message})`, { cause: error });
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data))
    throw new ConfigError(`${path}: a config file must hold an object`);
  return data as Record<string, unknown>;
}
