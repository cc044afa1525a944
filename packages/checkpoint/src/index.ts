export { SafetensorsError, DTYPE_BYTES, decodeElements, encodeElements, toNumbers, toFloat32 } from './dtypes.js';
export type { Dtype, TensorData, TensorEntry } from './dtypes.js';
export {
  SafetensorsFile,
  decodeSafetensors,
  encodeSafetensors,
  headerLength,
  parseHeader,
  readSafetensors,
  removeOrphanTemps,
  writeSafetensors,
} from './safetensors.js';
export type { SafetensorsHeader, TensorInfo, TensorToWrite } from './safetensors.js';
export {
  CheckpointMismatchError,
  exportMlMdmStateDict,
  fromTorchLayout,
  importMlMdmStateDict,
  mapSource,
  toTorchLayout,
  torchShape,
} from './ml-mdm.js';
export type { ImportOptions, TensorSource } from './ml-mdm.js';
