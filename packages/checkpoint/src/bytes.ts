// `@matryoshka-ts/checkpoint/bytes`: safetensors in memory, without any Node module, for web pages
// and other runtimes: decode a whole file from its bytes (a fetched ArrayBuffer), checksums
// verified; encode one; parse and validate a header. The file I/O is the package's main entry.
export { SafetensorsError, DTYPE_BYTES, decodeElements, encodeElements, toNumbers, toFloat32 } from './dtypes.js';
export type { Dtype, TensorData, TensorEntry } from './dtypes.js';
export { decodeSafetensors, encodeSafetensors, headerLength, parseHeader } from './safetensors-bytes.js';
export type { SafetensorsHeader, TensorInfo, TensorToWrite } from './safetensors-bytes.js';
