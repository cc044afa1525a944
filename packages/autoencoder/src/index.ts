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
export { decoderFeatures, decoderPlan } from './decoder.js';
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
export {
  BATCH_NORM_EPS,
  BATCH_NORM_MOMENTUM,
  DEFAULT_DISCRIMINATOR,
  INIT_STD,
  LEAKY_SLOPE,
  PatchDiscriminator,
  allocateDiscriminatorParams,
  batchNorm,
  discriminatorBufferSpecs,
  discriminatorForward,
  discriminatorInitialWeights,
  discriminatorOutputSize,
  discriminatorPlan,
  discriminatorSpecs,
} from './discriminator.js';
export type {
  BatchNormOptions,
  DiscriminatorCallOptions,
  DiscriminatorConfig,
  DiscriminatorStage,
} from './discriminator.js';
export {
  ADAPTIVE_WEIGHT_EPS,
  ADAPTIVE_WEIGHT_MAX,
  LAST_LAYER,
  adaptiveWeight,
  adoptWeight,
  discriminatorLoss,
  generatorLoss,
  hingeDiscriminatorLoss,
  vanillaDiscriminatorLoss,
} from './adversarial.js';
export type { DiscriminatorLossKind } from './adversarial.js';
export {
  LPIPS_MIN_SIZE,
  LPIPS_TAP_CHANNELS,
  Lpips,
  VGG_CONVS,
  lpipsParameterShapes,
  lpipsStateDictFromOnnx,
  unitNormalize,
} from './perceptual/lpips.js';
export type { LpipsStateDict, LpipsTensor } from './perceptual/lpips.js';
export { parseOnnxModel, readOnnxModel } from './perceptual/onnx-weights.js';
export type { OnnxGraph, OnnxNode, OnnxTensor } from './perceptual/onnx-weights.js';
export { Adam } from './adam.js';
export type { AdamOptions, AdamState } from './adam.js';
export {
  BASE_LEARNING_RATE,
  DISC_FACTOR,
  DISC_WEIGHT,
  KL_WEIGHT,
  LOGVAR_INIT,
  PERCEPTUAL_WEIGHT,
  klLoss,
  nllLoss,
  reconstructionLoss,
} from './loss.js';
export type { ReconstructionLossOptions } from './loss.js';
export { AutoencoderTrainStep, LOGVAR_NAME } from './training.js';
export type {
  AutoencoderStepResult,
  AutoencoderTrainOptions,
  AutoencoderTrainState,
  DiscriminatorTrainOptions,
  GeneratorPass,
} from './training.js';
