export {
  conv1x1,
  conv1x1Slice,
  conv2d,
  convSpecs,
  gelu,
  groupNorm,
  layerNorm,
  linear,
  linearSpecs,
  multiHeadAttention,
  normSpecs,
  paramsFrom,
  silu,
  upsampleNearest2x,
} from './layers.js';
export type { Params } from './layers.js';
export {
  allocateParams,
  assignWeights,
  initialValue,
  paramCountOf,
  readWeights,
  readWeightsAsync,
} from './param-store.js';
export type { AllocateOptions } from './param-store.js';
