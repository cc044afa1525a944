export { conv2dFilterGradient } from './conv2d-filter-gradient.js';
export {
  GROUP_NORM_ACT,
  GROUP_NORM_ACT_GRAD,
  type GroupNormActAttrs,
  type GroupNormActOptions,
  groupNormAct,
} from './group-norm.js';
export { markNativeKernels, registerKernelOverrides } from './register.js';
export { ADAM_UPDATE, type AdamUpdateAttrs, adamUpdate } from './adam-update.js';
export {
  CONV_BIAS,
  CONV_BIAS_FILTER_GRAD,
  type ConvBiasAttrs,
  type ConvBiasOptions,
  type ConvPadding,
  convBias,
} from './conv-bias.js';
export { UPSAMPLE_2X, UPSAMPLE_2X_GRAD, upsampleNearest2x } from './upsample.js';
