export { initBackend, activeBackend, ensureGradients, nativeKernelInfo } from './backend.js';
export { BACKEND_NAMES } from '@matryoshka-ts/core';
export type { BackendName } from '@matryoshka-ts/core';
export type { BackendOptions, BackendInfo } from './backend.js';
export { initDistributed } from './distributed.js';
export { webGpuErrors } from './webgpu.js';
export type { DistributedOptions } from './distributed.js';
