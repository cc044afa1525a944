import { DataError } from '@matryoshka-ts/core';
import type { FeatureExtractor, NetworkInput } from './feature-extractor.js';
import { networkInputBatch } from './feature-extractor.js';
import { type OnnxDevice, onnxRuntime, onnxSession, readOnnxFile } from './onnx-runtime.js';
import type { Uint8Image } from './resize.js';

export interface OnnxFeatureOptions extends Partial<NetworkInput> {
  /** Input and output names (default: the model's first of each). */
  inputName?: string;
  outputName?: string;
  /** Where the session runs (default `cpu`; `cuda` or `webgpu` where onnxruntime-node can start them). */
  device?: OnnxDevice;
}

/**
 * The FID Inception (or any image network) from a local ONNX file, e.g. pytorch-fid's InceptionV3
 * exported with its 2048-wide pool3 as output (docs/evaluation.md says how). Defaults match that
 * export: 299 px, pytorch-fid's bilinear resize, [0, 1] input, NCHW.
 */
export async function loadOnnxFeatureExtractor(
  path: string,
  options: OnnxFeatureOptions = {},
): Promise<FeatureExtractor> {
  const { bytes, tag } = readOnnxFile(path);
  const ort = await onnxRuntime();
  const session = await onnxSession(bytes, options.device);
  const input: NetworkInput = {
    size: options.size ?? 299,
    resize: options.resize ?? 'pytorch-fid',
    range: options.range ?? (options.resize === 'clean-fid' ? '0-255' : '0-1'),
    layout: options.layout ?? 'nchw',
  };
  const inputName = options.inputName ?? session.inputNames[0];
  const outputName = options.outputName ?? session.outputNames[0];
  for (const [kind, name, names] of [
    ['input', inputName, session.inputNames],
    ['output', outputName, session.outputNames],
  ] as const) {
    if (!names.includes(name)) throw new DataError(`${path} has no ${kind} '${name}' (it has ${names.join(', ')})`);
  }
  const run = async (images: Uint8Image[]): Promise<Float32Array> => {
    const s = input.size;
    const dims = input.layout === 'nchw' ? [images.length, 3, s, s] : [images.length, s, s, 3];
    const x = new ort.Tensor('float32', networkInputBatch(images, input), dims);
    const result = await session.run({ [inputName]: x }, [outputName]);
    const y = result[outputName];
    const data = y.data as Float32Array;
    x.dispose();
    y.dispose();
    return data;
  };
  // Feature width: one probe image (pool3's [N, 2048, 1, 1] flattens to 2048).
  const probe = await run([{ data: new Uint8Array(8 * 8 * 3), width: 8, height: 8, channels: 3 }]);
  const dim = probe.length;
  return {
    id: `onnx:${tag}|${input.resize}@${input.size}|${input.range}`,
    dim,
    resize:
      `${input.resize} ` +
      `(${input.resize === 'clean-fid' ? 'PIL bicubic, antialiased' : 'torch bilinear, align_corners=False'}) ` +
      `to ${input.size}`,
    proxy: false,
    async features(images) {
      if (!images.length) return new Float32Array(0);
      const out = await run(images);
      if (out.length !== images.length * dim)
        throw new Error(
          `${path}: output ${outputName} has ${out.length / images.length} values per image, expected ${dim}`,
        );
      return out;
    },
    dispose: () => session.release(),
  };
}
