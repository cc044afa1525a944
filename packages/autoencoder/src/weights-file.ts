import { CheckpointError } from '@matryoshka-ts/core';
import { SafetensorsFile, writeSafetensors } from '@matryoshka-ts/checkpoint';
import { AutoencoderKL } from './autoencoder-kl.js';
import { type AutoencoderKLConfig, fromCompVisConfig, toCompVisConfig } from './config.js';
import {
  type AutoencoderImport,
  type AutoencoderImportOptions,
  type WeightNaming,
  exportAutoencoderStateDict,
  importAutoencoderStateDict,
} from './state-dict.js';

/** Metadata key holding the CompVis `ddconfig` + `embed_dim` of a file we wrote, so it loads without a config. */
export const CONFIG_METADATA_KEY = 'ldm_autoencoder_config';

/** Loads weights from a safetensors file (CompVis or diffusers names) into `model`. */
export function loadAutoencoderWeights(
  model: AutoencoderKL,
  path: string,
  options: AutoencoderImportOptions = {},
): AutoencoderImport {
  const file = SafetensorsFile.open(path);
  try {
    const imported = importAutoencoderStateDict(model.specs, model.config.chMult.length, file, options);
    model.setWeights(imported.values);
    return imported;
  } finally {
    file.close();
  }
}

/**
 * An autoencoder built from a safetensors file: its config from `config` or, failing that, from
 * the file's own metadata (files written by `saveAutoencoder`).
 */
export function loadAutoencoder(
  path: string,
  options: AutoencoderImportOptions & { config?: AutoencoderKLConfig } = {},
): AutoencoderKL {
  let config = options.config;
  if (!config) {
    const file = SafetensorsFile.open(path);
    const stored = file.metadata[CONFIG_METADATA_KEY];
    file.close();
    if (!stored)
      throw new CheckpointError(
        `${path} carries no autoencoder config (metadata '${CONFIG_METADATA_KEY}'): pass the config ` +
          '(a preset such as kl-f8, or the ddconfig of the YAML it was trained with)',
      );
    const { ddconfig, embed_dim } = JSON.parse(stored) as { ddconfig: unknown; embed_dim: number };
    config = fromCompVisConfig(ddconfig, embed_dim);
  }
  const model = new AutoencoderKL(config);
  try {
    loadAutoencoderWeights(model, path, options);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

/**
 * Writes the weights atomically (temp file + rename) as safetensors in either naming, with the
 * config in the metadata.
 */
export function saveAutoencoder(
  model: AutoencoderKL,
  path: string,
  options: { naming?: WeightNaming; metadata?: Record<string, string> } = {},
): void {
  const tensors = exportAutoencoderStateDict(
    model.specs,
    model.config.chMult.length,
    model.getWeights(),
    options.naming ?? 'compvis',
  );
  writeSafetensors(path, tensors, {
    ...options.metadata,
    [CONFIG_METADATA_KEY]: JSON.stringify(toCompVisConfig(model.config)),
  });
}
