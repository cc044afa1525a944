import { join } from 'node:path';
import { type AutoencoderKLConfig, autoencoderPreset, downsamplingFactor } from '@matryoshka-ts/autoencoder';
import { cascadeResolutions } from '@matryoshka-ts/baselines';
import { ConfigError } from '@matryoshka-ts/core';
import { resolveConfig } from '@matryoshka-ts/nested-unet';
import { type TrainConfig, parseTrainConfig, runKindOf, unetConfigOf } from './config.js';

/** A stage that trains a diffusion model: a normal run in its own directory. */
export interface DiffusionStage {
  kind: 'diffusion';
  /** `base`, `upsampler-32`, `diffusion`, … */
  name: string;
  /** Its run directory, relative to the run's. */
  dir: string;
  config: TrainConfig;
}

/** A latent run's first stage: the KL autoencoder (trained here, or pretrained weights). */
export interface AutoencoderStage {
  kind: 'autoencoder';
  name: 'autoencoder';
  dir: string;
  config: AutoencoderKLConfig;
  /** Pretrained weights (no training). */
  weights?: string;
  train: Extract<TrainConfig['model'], { kind: 'latent' }>['autoencoder']['train'];
  /** The images it encodes (the data's resolution). */
  imageResolution: number;
}

export type RunStage = AutoencoderStage | DiffusionStage;

/** Where a latent run keeps its files, relative to the run directory. */
export const LATENT_RUN = {
  autoencoder: 'autoencoder',
  weights: join('autoencoder', 'autoencoder.safetensors'),
  cache: 'latents',
  diffusion: 'diffusion',
} as const;

/**
 * The stages of a multi-stage run, in training order, each with its own validated config: a
 * cascade's base then its super-resolution stages (`stage: upsampler`, `lowResCondition` set);
 * a latent run's autoencoder then its diffusion model on the latents (channels from the
 * autoencoder, `stage: latent`). `scaleFactor` is the latents' scale once known (`auto` runs
 * measure it after the autoencoder stage; 1 until then).
 */
export function runStages(config: TrainConfig, scaleFactor = 1): RunStage[] {
  const m = config.model;
  if (typeof m !== 'object' || !('kind' in m))
    throw new ConfigError(`runStages: a ${runKindOf(config)} run has one stage`);
  if (m.kind === 'cascaded') {
    const models = m.stages.map((s, i) => {
      const unet = unetConfigOf(s.model, config);
      return i === 0 ? unet : { ...unet, lowResCondition: true };
    });
    const resolutions = cascadeResolutions(models[0], models.slice(1));
    if (m.augLevel > config.schedule.steps)
      throw new ConfigError(`config: model.augLevel: ${m.augLevel} is above schedule.steps (${config.schedule.steps})`);
    return m.stages.map((s, i): DiffusionStage => {
      const name = i === 0 ? 'base' : `upsampler-${resolutions[i]}`;
      const stage =
        i === 0 ? undefined : { kind: 'upsampler' as const, baseResolution: resolutions[i - 1], augLevel: m.augLevel };
      return {
        kind: 'diffusion',
        name,
        dir: join('stages', `${i}-${name}`),
        config: stageConfig(config, name, models[i], s.phases, stage),
      };
    });
  }
  if (m.kind === 'latent') {
    const diffusion = unetConfigOf(m.diffusion, config);
    const latentResolution = resolveConfig(diffusion).levels[0].resolution;
    const { preset, weights, train, ...overrides } = m.autoencoder;
    const probe = autoencoderPreset(preset as Parameters<typeof autoencoderPreset>[0], overrides);
    const imageResolution = latentResolution * downsamplingFactor(probe);
    const ae = autoencoderPreset(preset as Parameters<typeof autoencoderPreset>[0], {
      ...overrides,
      resolution: imageResolution,
    });
    if (diffusion.imageChannels !== undefined && diffusion.imageChannels !== ae.embedDim)
      throw new ConfigError(
        `config: model.diffusion.imageChannels is ${diffusion.imageChannels} ` +
          `but the autoencoder's latents have ${ae.embedDim}`,
      );
    const stage = {
      kind: 'latent' as const,
      autoencoder: join('..', LATENT_RUN.weights),
      cache: join('..', LATENT_RUN.cache),
      scaleFactor,
      imageResolution,
    };
    return [
      {
        kind: 'autoencoder',
        name: 'autoencoder',
        dir: LATENT_RUN.autoencoder,
        config: ae,
        weights,
        train,
        imageResolution,
      },
      {
        kind: 'diffusion',
        name: 'diffusion',
        dir: LATENT_RUN.diffusion,
        config: stageConfig(config, 'diffusion', { ...diffusion, imageChannels: ae.embedDim }, config.phases, stage),
      },
    ];
  }
  throw new ConfigError(`runStages: a ${m.kind} run has one stage`);
}

function stageConfig(
  config: TrainConfig,
  name: string,
  model: TrainConfig['model'],
  phases: TrainConfig['phases'],
  stage: TrainConfig['stage'],
): TrainConfig {
  const { stage: _old, ...rest } = config;
  try {
    return parseTrainConfig({ ...rest, model, phases, ...(stage ? { stage } : {}) });
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`stage ${name}: ${error.message}`, { cause: error });
    throw error;
  }
}

/** Validates a run's config and, for a cascaded or latent run, every stage's. */
export function parseRunConfig(input: unknown): TrainConfig {
  const config = parseTrainConfig(input);
  const kind = runKindOf(config);
  if (kind === 'cascaded' || kind === 'latent') runStages(config);
  return config;
}
