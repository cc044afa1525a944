export { covarianceDefect, frechetDistance, frechetDistanceParts } from './frechet.js';
export type { FrechetOptions, FrechetParts } from './frechet.js';
export { FeatureStats } from './feature-stats.js';
export type { FeatureBatch } from './feature-stats.js';
export { decodeNpy, encodeNpy } from './npy.js';
export type { NpyArray, NpyDtype, NpyInput } from './npy.js';
export { decodeNpz, encodeNpz, fidStatsFromArrays, readFidStats, readNpz, writeFidStats, writeNpz } from './npz.js';
export type { FidStats } from './npz.js';
export { crc32, readZip, writeZip } from './zip.js';
export type { ZipMember } from './zip.js';
export {
  gemmNT,
  pivotedCholesky,
  sqrtmPsd,
  symmetricEigen,
  symmetricEigenvalues,
  symmetrized,
  transpose,
  tridiagonalEigen,
  tridiagonalize,
} from './linalg.js';
export type { GemmOptions, PivotedCholesky, SquareMatrix, SymmetricEigen, Tridiagonal } from './linalg.js';
export { featureStatsOf, networkInputBatch, quantizeToUint8 } from './feature-extractor.js';
export type { FeatureExtractor, NetworkInput } from './feature-extractor.js';
export { loadOnnxFeatureExtractor } from './onnx-features.js';
export type { OnnxFeatureOptions } from './onnx-features.js';
export { loadTfjsGraphFeatureExtractor } from './tfjs-graph-features.js';
export type { TfjsGraphFeatureOptions } from './tfjs-graph-features.js';
export {
  ONNX_DEVICES,
  ONNX_RUNTIME_INSTALL_HINT,
  describeOnnxDevice,
  onnxRuntime,
  onnxSession,
  readOnnxFile,
} from './onnx-runtime.js';
export type { OnnxDevice, OrtRuntime, OrtSession, OrtTensor } from './onnx-runtime.js';
export { clipScore, clipScoreOfCosine, loadOnnxClip } from './clip-score.js';
export type { ClipModel, ClipScoreDefinition, ClipScoreResult } from './clip-score.js';
export {
  cleanFidResize,
  clipPreprocess,
  pytorchFidResize,
  resizeBicubicPil,
  resizeBilinearTorch,
  resizeForFid,
} from './resize.js';
export type { ChwImage, FloatImage, ResizeMethod, Uint8Image } from './resize.js';
