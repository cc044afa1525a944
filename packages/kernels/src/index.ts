export { conv2dFilterGradient } from './conv2d-filter-gradient.js';
export { markNativeKernels, registerKernelOverrides } from './register.js';
