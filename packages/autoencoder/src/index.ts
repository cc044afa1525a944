export {
  AUTOENCODER_PRESETS,
  AUTOENCODER_PRESET_NAMES,
  NORM_EPS,
  NORM_GROUPS,
  autoencoderPreset,
  compVisConfigSchema,
  downsamplingFactor,
  fromCompVisConfig,
  toCompVisConfig,
  validateConfig,
} from './config.js';
export type { AutoencoderKLConfig, AutoencoderPresetName, CompVisConfig } from './config.js';
export { AutoencoderKL, autoencoderSpecs, decodeLatent, encodeMoments } from './autoencoder-kl.js';
export type { AutoencoderCallOptions } from './autoencoder-kl.js';
export { decoderPlan } from './decoder.js';
export { encoderPlan } from './encoder.js';
export type { LevelPlan } from './encoder.js';
export {
  LOGVAR_MAX,
  LOGVAR_MIN,
  diagonalGaussian,
  disposePosterior,
  klDivergence,
  negativeLogLikelihood,
  posteriorMode,
  samplePosterior,
} from './posterior.js';
export type { DiagonalGaussian } from './posterior.js';
export { detectNaming, diffusersNames, exportAutoencoderStateDict, importAutoencoderStateDict } from './state-dict.js';
export type { AutoencoderImport, AutoencoderImportOptions, WeightNaming } from './state-dict.js';
export { CONFIG_METADATA_KEY, loadAutoencoder, loadAutoencoderWeights, saveAutoencoder } from './weights-file.js';
