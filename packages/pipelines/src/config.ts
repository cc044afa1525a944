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
import { AUTOENCODER_PRESET_NAMES } from '@matryoshka-ts/autoencoder/config';
import { phaseLevel } from './phases.js';
import { checkTensorSizes } from './tensor-sizes.js';
import { jsonSyntaxError } from './json-position.js';

const pos = z.number().int().positive();
const fraction = z.number().min(0).max(1);

/** One stage of progressive training: train the levels up to `resolution` for `steps` steps. */
const phaseSchema = z.strictObject({
  /** The highest resolution trained in this phase (a level of the model). */
  resolution: pos,
  /** Frames of that level: 16 for a video model's 16×64 level, 1 for its 64 px image level (needed only there). */
  frames: pos.optional(),
  batchSize: pos,
  steps: pos,
});

/** A NestedUNet: a preset name (MDM-S64, cc12m-256, …) or a config. */
const unetSchema = z.union([z.string(), nestedUNetConfigSchema]);

/** One stage of a cascade: its model and its own phases. */
const cascadeStageSchema = z.strictObject({ model: unetSchema, phases: z.array(phaseSchema).min(1) });

/**
 * The KL autoencoder of a latent run: a preset (kl-f4, kl-f8, …) with any field overridden, and
 * either pretrained weights (a safetensors file, CompVis or diffusers names) or training settings
 * (CompVis's loss: L1 + LPIPS + learned log-variance NLL + KL, optional PatchGAN).
 */
const autoencoderSchema = z.strictObject({
  preset: z.enum(AUTOENCODER_PRESET_NAMES as [string, ...string[]]).default('kl-f8'),
  ch: pos.optional(),
  chMult: z.array(pos).min(1).optional(),
  numResBlocks: pos.optional(),
  attnResolutions: z.array(pos).optional(),
  zChannels: pos.optional(),
  embedDim: pos.optional(),
  /** Pretrained weights: used as they are (no autoencoder training). */
  weights: z.string().min(1).optional(),
  train: z
    .strictObject({
      steps: pos.default(2000),
      batchSize: pos.default(8),
      lr: z.number().positive().default(1e-4),
      klWeight: z.number().nonnegative().default(1e-6),
      /** A local ONNX export of LPIPS (VGG, v0.1); omitted: L1 only. */
      lpips: z.string().min(1).optional(),
      perceptualWeight: z.number().nonnegative().default(1),
      /** The PatchGAN discriminator with hinge loss and the adaptive weight, from step `start`. */
      discriminator: z
        .strictObject({
          start: z.number().int().nonnegative(),
          weight: z.number().nonnegative().default(0.5),
          /** ndf and n_layers of the PatchGAN (CompVis: 64 and 3; images need at least 3·2^layers px). */
          ndf: pos.default(64),
          layers: pos.default(3),
        })
        .optional(),
    })
    .prefault({}),
});

/**
 * What a run trains (`model.kind`): an MDM (a preset, a NestedUNet config, or `kind: mdm`), a
 * simple DM (`kind: simple`: a single-level UNet, or a NestedUNet trained on its top level's loss
 * only), a cascade (base model, then super-resolution stages), or a latent DM (autoencoder, then
 * a UNet or MDM on its latents).
 */
const singleModelSchema = nestedUNetConfigSchema.extend({ kind: z.enum(['mdm', 'simple']) });
const cascadedSchema = z.strictObject({
  kind: z.literal('cascaded'),
  /** The base model first (lowest resolution), then each super-resolution stage. */
  stages: z.array(cascadeStageSchema).min(2),
  /** The augmentation level the low-resolution input gets at sampling (1 … schedule.steps). */
  augLevel: pos.default(100),
});
const latentSchema = z.strictObject({
  kind: z.literal('latent'),
  autoencoder: autoencoderSchema.prefault({}),
  /** The diffusion model on the latents (its resolution is the image's over the autoencoder's factor). */
  diffusion: unetSchema,
  /** Latents are multiplied by this: a number (0.18215 for SD's kl-f8), or `auto`: 1/std of the first batch's. */
  scaleFactor: z.union([z.literal('auto'), z.number().positive()]).default('auto'),
});
const modelSchema = z.union([z.string(), nestedUNetConfigSchema, singleModelSchema, cascadedSchema, latentSchema]);

/** Set by a multi-stage run on the configs of its stages: what else a stage's model sees. */
const stageSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    /** A cascade's super-resolution stage: trained on noise-augmented views at `baseResolution`. */
    kind: z.literal('upsampler'),
    baseResolution: pos,
    augLevel: pos,
  }),
  z.strictObject({
    /** A latent DM's diffusion stage: trained on the cached latents, sampled through the decoder. */
    kind: z.literal('latent'),
    /** The autoencoder's weights file and the latent cache's root directory. */
    autoencoder: z.string().min(1),
    cache: z.string().min(1),
    scaleFactor: z.number().positive(),
    /** The image resolution the autoencoder encodes. */
    imageResolution: pos,
  }),
]);

/** The branch of `modelSchema` for each `model.kind` (a union's own error only says "Invalid input"). */
const MODEL_BY_KIND = {
  mdm: singleModelSchema,
  simple: singleModelSchema,
  cascaded: cascadedSchema,
  latent: latentSchema,
} as const;

/** ` (got 1.5)`: the value a schema issue refused, when it is a number, a short string or a boolean. */
function got(issue: { input?: unknown; code?: string }): string {
  const value = issue.input;
  if (issue.code === 'unrecognized_keys') return '';
  if (typeof value === 'number' || typeof value === 'boolean') return ` (got ${value})`;
  if (typeof value === 'string')
    return ` (got ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)})`;
  return '';
}

/** The first problem of `input.model` against the schema its kind (or its shape) selects. */
function modelIssue(input: unknown): { path: PropertyKey[]; message: string; input?: unknown } | undefined {
  const model = (input as { model?: unknown } | null)?.model;
  if (typeof model !== 'object' || model === null) return undefined;
  const kind = (model as { kind?: unknown }).kind;
  const schema = kind === undefined ? nestedUNetConfigSchema : MODEL_BY_KIND[kind as keyof typeof MODEL_BY_KIND];
  if (!schema) return { path: ['model', 'kind'], message: `must be one of ${Object.keys(MODEL_BY_KIND).join(', ')}` };
  const result = schema.safeParse(model, { reportInput: true });
  if (result.success) return undefined;
  const issue = result.error.issues[0];
  return { path: ['model', ...issue.path], message: issue.message, input: issue.input };
}

/** The whole training configuration; every field has a default except where noted. */
export const trainConfigSchema = z.strictObject({
  model: modelSchema,
  /** Set on the stages of a cascaded or latent run (not written by users). */
  stage: stageSchema.optional(),
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
            /** Where ONNX Runtime runs it: cpu, cuda (CUDA 12 provider files) or webgpu (a GPU through its Dawn). */
            device: z.enum(['cpu', 'cuda', 'webgpu']).default('cpu'),
          }),
        ])
        .prefault({}),
    })
    .prefault({}),
  schedule: z
    .strictObject({
      /**
       * cosine, cosine-logsnr or linear, optionally shifted: -shiftN (SNR/N, ml-mdm), -resD[-refR]
       * (simple diffusion's +2·ln(R/D) log-SNR shift) or -resD-interpL-H (its interpolated form).
       */
      name: z.string().default('cosine'),
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
      /**
       * Min-SNR-γ weighting (Hang et al. 2023; 5 in their paper): each level's error at time t is
       * weighted as if its x0 error counted min(SNR, γ) times, SNR from that level's (shifted)
       * schedule. Off by default, as in the official code.
       */
      minSnrGamma: z.number().positive().optional(),
    })
    .refine((loss) => !(loss.vdmWeights && loss.minSnrGamma !== undefined), {
      message: 'loss.vdmWeights and loss.minSnrGamma are two weightings of the same sum: choose one',
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
      /**
       * After warm-up: constant (the official code), or a cosine fall over each phase to
       * `decayFloor`·lr at its last step, which sharpens a short run's end.
       */
      decay: z.enum(['none', 'cosine']).default('none'),
      decayFloor: fraction.default(0.1),
    })
    .prefault({}),
  ema: z
    .strictObject({
      decay: fraction.default(0.9999),
      /** Use min(decay, (1 + n)/(10 + n)) at update n, so short runs still get a useful average. */
      warmup: z.boolean().default(true),
    })
    .prefault({}),
  /** Progressive phases (a cascade's stages carry their own). */
  phases: z.array(phaseSchema).default([]),
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
  /**
   * A trained run (directory or checkpoint) whose model is the inside of this one: its weights and
   * EMA start the first phase's inner levels (the paper's image → video progression across runs).
   */
  initFrom: z.string().min(1).optional(),
  backend: z.enum(BACKEND_NAMES).default('auto'),
  /** Stop after this many non-finite losses in a row. */
  maxBadSteps: pos.default(20),
});

export type TrainConfigInput = z.input<typeof trainConfigSchema>;
export type TrainConfig = z.output<typeof trainConfigSchema>;

/** What a run trains: `mdm` (the default), `simple`, `cascaded` or `latent`. */
export type RunKind = 'mdm' | 'simple' | 'cascaded' | 'latent';

/** The kind of run a config describes (`mdm` for a preset or a plain NestedUNet config). */
export function runKindOf(config: Pick<TrainConfig, 'model'>): RunKind {
  const m = config.model;
  return typeof m === 'object' && 'kind' in m && m.kind ? m.kind : 'mdm';
}

/** Cascaded and latent runs train several models in order (each in its own stage directory). */
export function isMultiStage(config: Pick<TrainConfig, 'model'>): boolean {
  const kind = runKindOf(config);
  return kind === 'cascaded' || kind === 'latent';
}

/** A NestedUNet a config names: a preset expanded with the config's conditioning, or the config itself. */
export function unetConfigOf(spec: string | NestedUNetConfig, config: TrainConfig): NestedUNetConfig {
  if (typeof spec !== 'string') return spec;
  if (!(PRESET_NAMES as readonly string[]).includes(spec)) {
    throw new ConfigError(`config: model: unknown preset '${spec}' (available: ${PRESET_NAMES.join(', ')})`);
  }
  const kind = config.conditioning.kind;
  return modelPreset(spec, {
    conditioning: kind === 'text' ? { kind, featureDim: config.conditioning.encoder.width } : { kind },
  });
}

/**
 * The model config of a single-model run (mdm, simple, or one stage of a multi-stage run); a
 * cascaded or latent run's models are its stages' (`runStages`).
 */
export function modelConfigOf(config: TrainConfig): NestedUNetConfig {
  const m = config.model;
  if (typeof m === 'object' && 'kind' in m && m.kind) {
    if (m.kind === 'cascaded' || m.kind === 'latent')
      throw new ConfigError(`config: a ${m.kind} run trains in stages; each stage's config names its model`);
    const { kind: _kind, ...unet } = m;
    return unet;
  }
  return unetConfigOf(m as string | NestedUNetConfig, config);
}

/**
 * The full model's noise schedules, level 0 first: the config's base schedule shifted per level by
 * (size / innermost size)^shiftPower, a clip's size its frames tiled √F × √F. A phase's model uses
 * the slice from its top level on.
 */
export function levelSchedulesOf(config: TrainConfig): LevelSchedules {
  const levels = resolveConfig(modelConfigOf(config)).levels;
  const scales = levelScales(
    levels.map((l) => l.resolution),
    levels.map((l) => l.frames),
  );
  return levelSchedules(baseScheduleOf(config), scales, { power: config.schedule.shiftPower });
}

/** The config's base schedule (a cascade's noise augmentation uses it too). */
export function baseScheduleOf(config: TrainConfig) {
  try {
    return scheduleByName(config.schedule.name, config.schedule.steps);
  } catch (error) {
    throw new ConfigError(`config: schedule.name: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Validates a config (schema, then the model and phases against each other); errors name the
 * field. A cascaded or latent run is checked stage by stage (`checkStages`, given by the caller
 * that knows how stages are derived: `parseRunConfig`).
 */
export function parseTrainConfig(input: unknown): TrainConfig {
  const parsed = trainConfigSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) {
    const issue = modelIssue(input) ?? parsed.error.issues[0];
    throw new ConfigError(`config: ${issue.path.join('.') || '(root)'}: ${issue.message}${got(issue)}`);
  }
  const config = parsed.data;
  baseScheduleOf(config);
  const kind = runKindOf(config);
  if (kind === 'cascaded') {
    if (config.phases.length)
      throw new ConfigError("config: phases: a cascaded run's phases are each stage's (model.stages[i].phases)");
    checkDataConfig(config);
    return config;
  }
  if (config.phases.length === 0) throw new ConfigError('config: phases: at least one phase is needed');
  if (kind === 'latent') {
    checkDataConfig(config);
    return config;
  }
  checkModelConfig(config);
  checkDataConfig(config);
  return config;
}

/** A single model's config against the conditioning, phases, loss and data. */
function checkModelConfig(config: TrainConfig): void {
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
  const full = modelConfigOf(config);
  const froms = config.phases.map((phase, i) => phaseLevel(full, phase, i));
  froms.forEach((from, i) => {
    if (i > 0 && from > froms[i - 1])
      throw new ConfigError(`config: phases.${i}.resolution: phases must not go down in resolution`);
  });
  // Sizes no tensor can hold (a data batch or a parameter) fail here; the machine's memory is
  // checked when training starts (`checkTrainingMemory`), so large configs still parse anywhere.
  checkTensorSizes(config, full);
  const levels = model.levels.length;
  const oneTopPhase = config.phases.length === 1 && config.phases[0].resolution === resolutions[0];
  if (runKindOf(config) === 'simple' && !oneTopPhase)
    throw new ConfigError(
      `config: phases: a simple DM trains its top level only: one phase at ${resolutions[0]} px ` +
        '(no progressive phases)',
    );
  if (config.loss.weights && config.loss.weights.length !== levels)
    throw new ConfigError(`config: loss.weights: needs ${levels} entries (one per level)`);
  if (config.loss.mixedRatio && config.loss.mixedRatio.length !== levels)
    throw new ConfigError(`config: loss.mixedRatio: needs ${levels} entries (one per level)`);
  const stage = config.stage;
  if (stage?.kind === 'latent') {
    // A latent stage's model denoises the autoencoder's latents (channels checked against it by runStages).
    if (config.data.source === 'bundled' && stage.imageResolution > 64)
      throw new ConfigError('config: the bundled emoji images are 64 px; the autoencoder encodes larger ones');
    return;
  }
  // Every data source decodes RGB images; latent (4-channel) or grey models need their own data.
  if (model.imageChannels !== 3) {
    throw new ConfigError(
      'config: model.imageChannels: the data sources give RGB images (3 channels), ' +
        `the model takes ${model.imageChannels} ` +
        "(a latent run sets its diffusion model's channels from the autoencoder)",
    );
  }
  if (stage?.kind === 'upsampler') {
    if (!model.lowResCondition)
      throw new ConfigError('config: a super-resolution stage needs model.lowResCondition: true');
    if (stage.baseResolution >= resolutions[0])
      throw new ConfigError(
        `config: stage.baseResolution: ${stage.baseResolution} px is not below the stage's ${resolutions[0]} px`,
      );
  } else if (model.lowResCondition) {
    throw new ConfigError('config: model.lowResCondition is for the super-resolution stages of a cascaded run');
  }
  if (config.data.source === 'bundled' && resolutions[0] > 64)
    throw new ConfigError("config: the bundled emoji images are 64 px; the model's top level is larger");
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

/**
 * Sets `path` (dots between keys, numbers index arrays) to `value`: JSON if it parses, else the
 * text as a string. A value that starts like a JSON list, object or string (`[`, `{`, `"`) must
 * parse; errors name the key.
 */
export function applyOverride(target: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set expects key=value, got '${assignment}'`);
  const key = assignment.slice(0, eq);
  const keys = key.split('.');
  if (keys.some((k) => k.trim() === ''))
    throw new ConfigError(`--set ${key}: empty key between dots (write e.g. phases.0.batchSize=8)`);
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    if (/^\s*[[{"]/.test(raw)) {
      const at = jsonSyntaxError(raw, error as Error);
      const shown = raw.length > 60 ? `${raw.slice(0, 60)}…` : raw;
      throw new ConfigError(`--set ${key}: the value ${shown} is not valid JSON: at column ${at.column}, ${at.reason}`);
    }
    value = raw;
  }
  let node: Record<string, unknown> = target;
  keys.forEach((k, i) => {
    const here = keys.slice(0, i).join('.');
    if (Array.isArray(node)) {
      if (!/^\d+$/.test(k)) throw new ConfigError(`--set ${key}: ${here} is a list; '${k}' is not an index (0, 1, …)`);
      if (Number(k) > node.length)
        throw new ConfigError(
          `--set ${key}: ${here} has ${node.length} entries; index ${k} is past its end (at most ${node.length})`,
        );
    }
    if (i === keys.length - 1) {
      node[k] = value;
      return;
    }
    if (node[k] === undefined || node[k] === null || typeof node[k] !== 'object') node[k] = {};
    node = node[k] as Record<string, unknown>;
  });
}
