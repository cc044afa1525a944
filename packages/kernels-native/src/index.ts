export { type LoadResult, type NativeAddon, buildHint, loadAddon } from './addon.js';
export {
  NATIVE_KERNELS,
  type NativeBase,
  type NativeKernelsInfo,
  nativeKernelsActive,
  registerNativeKernels,
  unregisterNativeKernels,
} from './register.js';
export { type MpiCommunicator, type OpenMpiOptions, openMpi } from './mpi.js';
