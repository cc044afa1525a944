export type { EncodedText, TextEncoder } from './text-encoder.js';
export { HashedWordEncoder, words } from './hashed-words.js';
export type { HashedWordOptions } from './hashed-words.js';
export { ClipTokenizer, bytesToUnicode, clipClean, htmlUnescape, parseMergesTxt } from './clip-tokenizer.js';
export type { ClipBatch, ClipTokenizerOptions } from './clip-tokenizer.js';
export type { AsyncTextEncoder, EncodedTextArrays } from './text-encoder.js';
export { SPACE_PIECE, T5Tokenizer, t5Normalize } from './t5-tokenizer.js';
export type { T5Batch, T5TokenizerOptions } from './t5-tokenizer.js';
export { tokenizerFromDirectory } from './tokenizer-from-directory.js';
export type { BatchTokenizer, DirectoryTokenizer } from './tokenizer-from-directory.js';
export { ONNX_TEXT_MODEL_FILES, loadOnnxTextEncoder } from './onnx-text-encoder.js';
export type { OnnxTextEncoderOptions } from './onnx-text-encoder.js';
export { onnxModelFingerprint } from './model-fingerprint.js';
export { TextFeatureCache } from './text-feature-cache.js';
export { captionListDigest } from './text-feature-cache.js';
export type {
  PrepareOptions,
  PrepareResult,
  TextFeatureCacheOptions,
  TextFeatureMergeReport,
  TextFeaturePart,
} from './text-feature-cache.js';
export {
  ONNX_DEVICES,
  ONNX_RUNTIME_INSTALL_HINT,
  describeOnnxDevice,
  onnxRuntime,
  onnxSession,
  onnxSessionFromFile,
  onnxWebGpuAdapter,
  readOnnxFile,
} from './onnx-runtime.js';
export type {
  OnnxDevice,
  OnnxWebGpuAdapter,
  OrtRuntime,
  OrtSession,
  OrtTensor,
  OrtValueMetadata,
} from './onnx-runtime.js';
