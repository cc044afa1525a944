// The shared vocabulary of every package: seeded RNG, parameter specs, layouts and errors. No
// backend is imported here; choosing one is @matryoshka-ts/backends' job.
export { Rng } from './rng.js';
export { crc32Portable } from './crc32.js';
export type { RngState } from './rng.js';
export { BACKEND_NAMES, sizeOf } from './types.js';
export type { BackendName, PredictionType, ParamLayout, ParamInit, ParamSpec } from './types.js';
export {
  clipRowsToFrames,
  framesToClipRows,
  framesToTiled,
  maxAbsDiff,
  nchwToNhwc,
  nhwcToNchw,
  tileGrid,
  tiledToFrames,
} from './layout.js';
export { BackendError, CheckpointError, ConfigError, DataError, MdmError, WriteError, isUserError } from './errors.js';
export type { MdmErrorCode } from './errors.js';
export type { Conditioning, DiffusionInputs, DiffusionLevel, DiffusionModel, ParamLookup } from './diffusion-model.js';
export { SINGLE_PROCESS, launcherWorld } from './communicator.js';
export type { Communicator, LauncherWorld } from './communicator.js';
export { shardRange } from './shard.js';
export type { Shard } from './shard.js';
export { isSoftwareRenderer } from './software-renderer.js';
