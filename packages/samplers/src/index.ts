export type { Denoiser, NetworkDenoiserOptions, NetworkRun } from './denoiser.js';
export {
  classifierFreeGuidance,
  clipRowsNetwork,
  combineGuidance,
  networkDenoiser,
  officialNetworkTime,
} from './denoiser.js';
export type { DynamicThreshold, Threshold, ThresholdName } from './threshold.js';
export {
  DYNAMIC_DEEPFLOYD,
  DYNAMIC_IMAGEN,
  applyThreshold,
  dynamicThreshold,
  quantilePerSample,
  thresholdByName,
} from './threshold.js';
export type { StepGammas } from './steps.js';
export { ddimStep, ddpmStep, epsFromX0, posteriorVariance, predictX0, stepGammas } from './steps.js';
export type { AsyncSampleOptions, SampleOptions, SamplerKind, StepOptions } from './sample.js';
export { sample, sampleAsync, sampleStep, stepFromPrediction } from './sample.js';
