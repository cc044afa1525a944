export { initBackend, activeBackend, ensureGradients } from './backend.js';
export { BACKEND_NAMES } from './backend.js';
export type { BackendName, BackendOptions, BackendInfo } from './backend.js';
export { Rng } from './rng.js';
export type { RngState } from './rng.js';
export { sizeOf } from './types.js';
export type { PredictionType, ParamLayout, ParamInit, ParamSpec } from './types.js';
export { nchwToNhwc, nhwcToNchw, maxAbsDiff } from './layout.js';
