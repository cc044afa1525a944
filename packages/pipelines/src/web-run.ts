// A trained run as a web page loads it (`mdm-train export --web <dir>`): web-run.json (this
// manifest), config.json (the run's resolved config) and weights.safetensors (the EMA weights of
// the model the checkpoint was trained at). No Node module: the page imports this through
// `@matryoshka-ts/pipelines/browser` and opens the run from the three files' contents.
import { z } from 'zod';
import { CheckpointError, ConfigError, type DiffusionLevel, type DiffusionModel } from '@matryoshka-ts/core';
import { decodeSafetensors, toFloat32 } from '@matryoshka-ts/checkpoint/bytes';
import { NestedUNet, nestedUNetSpecs, paramsFrom } from '@matryoshka-ts/nested-unet';
import type { LevelSchedules } from '@matryoshka-ts/schedules';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders/browser';
import type { Conditioner } from './conditioning.js';
import { type TrainConfig, levelSchedulesOf, modelConfigOf, parseTrainConfig, runKindOf } from './config.js';
import { type GenerateOptions, type LevelSamples, generate } from './generate.js';
import { phaseModelConfig } from './phases.js';

/** The manifest's file name in an exported folder. */
export const WEB_RUN_FILE = 'web-run.json';
const FORMAT = 'matryoshka-ts/web-run';

const level = z.strictObject({
  resolution: z.number().int().positive(),
  channels: z.number().int().positive(),
  frames: z.number().int().positive(),
});

/** What `mdm-train export --web` writes into web-run.json. */
export const webRunManifestSchema = z.strictObject({
  format: z.literal(FORMAT),
  version: z.literal(1),
  /** The run's resolved config and the weights, as files beside the manifest. */
  config: z.string().min(1),
  weights: z.string().min(1),
  /** The checkpoint's training step and phase (0-based). */
  step: z.number().int().nonnegative(),
  phase: z.number().int().nonnegative(),
  /** The checkpoint's phase trains the levels from this one inwards (0: the full model). */
  from: z.number().int().nonnegative(),
  /** EMA weights (the default) or the raw ones. */
  ema: z.boolean(),
  /** The sampled model's levels, outermost first. */
  levels: z.array(level).min(1),
  /** How captions reach the model: the hashed-word encoder's settings, class labels, or nothing. */
  conditioning: z.discriminatedUnion('kind', [
    z.strictObject({
      kind: z.literal('text'),
      encoder: z.strictObject({
        kind: z.literal('hashed-words'),
        width: z.number().int().positive(),
        maxTokens: z.number().int().positive(),
      }),
    }),
    z.strictObject({ kind: z.literal('labels'), numClasses: z.number().int().positive() }),
    z.strictObject({ kind: z.literal('none') }),
  ]),
  /** The run's sampling settings: the page's defaults. */
  sampling: z.strictObject({
    steps: z.number().int().positive(),
    sampler: z.enum(['ddpm', 'ddim']),
    eta: z.number().nonnegative(),
    guidance: z.number().nonnegative(),
    threshold: z.enum(['none', 'clip', 'dynamic', 'dynamic-deepfloyd']),
  }),
  /** A few captions of the training data, to start from. */
  prompts: z.array(z.string()),
});

export type WebRunManifest = z.infer<typeof webRunManifestSchema>;

/** Checks a parsed web-run.json; `source` (its URL or path) names it in the error. */
export function parseWebRunManifest(input: unknown, source = WEB_RUN_FILE): WebRunManifest {
  const parsed = webRunManifestSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new ConfigError(
    `${source}: not a web run exported by \`mdm-train export --web\` ` +
      `(${issue.path.join('.') || '(root)'}: ${issue.message})`,
  );
}

/**
 * Whether a run can be exported for a web page, as a one-line reason when it cannot: a single
 * model (mdm or simple) conditioned on the hashed-word encoder, class labels or nothing.
 */
export function webExportProblem(config: TrainConfig): string | undefined {
  const kind = runKindOf(config);
  if (kind === 'cascaded' || kind === 'latent')
    return `a ${kind} run samples through several models; a web page samples one (an mdm or simple run)`;
  if (config.stage) return `this is one stage of a ${config.stage.kind === 'upsampler' ? 'cascaded' : 'latent'} run`;
  const c = config.conditioning;
  if (c.kind === 'text' && c.encoder.kind !== 'hashed-words')
    return `the run's text encoder is an ONNX export (${c.encoder.path}); a web page runs the hashed-word encoder only`;
  return undefined;
}

/** The conditioner a web run samples with (the config's, as `openConditioner` makes it in Node). */
function webConditioner(config: TrainConfig, model: NestedUNet): Conditioner {
  const c = config.conditioning;
  if (c.kind === 'labels') return { kind: 'labels', numClasses: model.config.labels!.numClasses };
  if (c.kind === 'none') return { kind: 'none' };
  if (c.encoder.kind !== 'hashed-words') throw new ConfigError(webExportProblem(config)!);
  return { kind: 'text', encoder: new HashedWordEncoder(c.encoder) };
}

/** A web run's files, fetched: web-run.json and config.json parsed, the weights' bytes. */
export interface WebRunFiles {
  manifest: unknown;
  config: unknown;
  weights: Uint8Array | ArrayBuffer;
  /** Where they came from (the folder's URL), for error messages. */
  source?: string;
}

/** A web run ready to sample on the active backend. */
export interface WebRun {
  manifest: WebRunManifest;
  config: TrainConfig;
  model: DiffusionModel;
  levels: DiffusionLevel[];
  schedules: LevelSchedules;
  conditioner: Conditioner;
  /** `generate` with the run's model, weights, schedules, conditioner and prediction type. */
  generate(options: Omit<GenerateOptions, 'prediction' | 'lowRes'>): Promise<LevelSamples[]>;
  dispose(): void;
}

/**
 * Opens an exported run from its files' contents: the model of the checkpoint's phase with the
 * exported weights (every parameter present, none unknown), its schedules and conditioner.
 */
export function openWebRun(files: WebRunFiles): WebRun {
  const source = files.source ?? '.';
  const manifest = parseWebRunManifest(files.manifest, `${source}/${WEB_RUN_FILE}`);
  const config = parseTrainConfig(files.config);
  const problem = webExportProblem(config);
  if (problem) throw new ConfigError(`${source}: ${problem}`);
  const modelConfig = phaseModelConfig(modelConfigOf(config), manifest.from);
  const specs = nestedUNetSpecs(modelConfig);
  const file = decodeSafetensors(files.weights, `${source}/${manifest.weights}`);
  const weights = new Map<string, Float32Array>();
  for (const spec of specs) {
    const entry = file.tensors.get(spec.name);
    if (!entry) throw new CheckpointError(`${source}/${manifest.weights}: no weights for '${spec.name}'`);
    weights.set(spec.name, toFloat32(entry.data));
  }
  const unknown = [...file.tensors.keys()].filter((name) => !weights.has(name));
  if (unknown.length)
    throw new CheckpointError(
      `${source}/${manifest.weights}: ${unknown.length} tensors the model does not have (${unknown.slice(0, 3)})`,
    );
  const model = new NestedUNet(modelConfig, { weights });
  const params = paramsFrom(model.params);
  const schedules = levelSchedulesOf(config).slice(manifest.from);
  const conditioner = webConditioner(config, model);
  return {
    manifest,
    config,
    model,
    levels: [...model.levels],
    schedules,
    conditioner,
    generate: (options) =>
      generate(model, params, schedules, conditioner, { ...options, prediction: config.loss.prediction }),
    dispose: () => model.dispose(),
  };
}
