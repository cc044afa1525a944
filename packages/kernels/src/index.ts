export { conv2dFilterGradient } from './conv2d-filter-gradient.js';
export { registerKernelOverrides } from './register.js';
