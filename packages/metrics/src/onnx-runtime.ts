// ONNX Runtime is loaded (optionally, on first use) by @matryoshka-ts/text-encoders, the lowest
// package that runs ONNX models; metrics re-exports its helpers under their old names.
export {
  ONNX_DEVICES,
  ONNX_RUNTIME_INSTALL_HINT,
  describeOnnxDevice,
  onnxRuntime,
  onnxSession,
  readOnnxFile,
} from '@matryoshka-ts/text-encoders';
export type { OnnxDevice, OrtRuntime, OrtSession, OrtTensor } from '@matryoshka-ts/text-encoders';
