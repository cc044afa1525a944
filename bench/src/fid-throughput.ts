// FID feature extraction through ONNX Runtime on a device: Inception images/s on cpu, cuda or
// webgpu. The network is an Inception ONNX file of yours (--model, or MDM_INCEPTION_ONNX: e.g.
// pytorch-fid's export, docs/evaluation.md), else one generated here with pytorch-fid's
// InceptionV3 layers and random weights (the real network's shape and cost, nothing downloaded;
// the line says `model=inception-v3-random`). Batches of 299 px images in [0, 1], NCHW, as
// loadOnnxFeatureExtractor feeds them; the resize before it runs in JavaScript on any device and
// is not timed. One untimed batch first (WebGPU compiles its shaders then). Prints one line per
// device, and the ratio to the first device when there are several. A benchmark, not a test:
//   node --conditions=source --import tsx bench/src/fid-throughput.ts --device webgpu
//   … --device cpu,webgpu [--model pt_inception.onnx] [--batch 8] [--batches 3] [--width 1]
// A machine without a GPU finds lavapipe (tooling/scripts/lavapipe.sh) for webgpu: software, slow.
import { basename } from 'node:path';
import {
  ONNX_DEVICES,
  type OnnxDevice,
  describeOnnxDevice,
  onnxRuntime,
  onnxSession,
  readOnnxFile,
} from '@matryoshka-ts/text-encoders';
import { inceptionV3Onnx, seeded, softwareVulkan } from '@matryoshka-ts/test-utils';

export interface FidThroughputOptions {
  device: OnnxDevice;
  /** An Inception ONNX file (input [N, 3, 299, 299], output [N, 2048…]); default: a random-weight one. */
  model?: string;
  /** Images per batch (default 8). */
  batch?: number;
  /** Timed batches after the untimed first one (default 3). */
  batches?: number;
  /** Width of the generated network, as a fraction of the real one (default 1); ignored with `model`. */
  width?: number;
}

export interface FidThroughput {
  device: OnnxDevice;
  imagesPerSecond: number;
  /** The file's name and content hash, or `inception-v3-random@<width>`. */
  model: string;
  batch: number;
  /** The device in words: ONNX Runtime's version and, for webgpu, the adapter. */
  description: string;
}

const generated = new Map<number, Uint8Array>();

/** Inception features images/s through ONNX Runtime on `device` (see the file's comment). */
export async function fidThroughput(options: FidThroughputOptions): Promise<FidThroughput> {
  const batch = options.batch ?? 8;
  const batches = options.batches ?? 3;
  const width = options.width ?? 1;
  softwareVulkan();
  let bytes: Uint8Array;
  let model: string;
  if (options.model) {
    const file = readOnnxFile(options.model);
    bytes = file.bytes;
    model = file.tag;
  } else {
    if (!generated.has(width)) generated.set(width, inceptionV3Onnx({ widthScale: width }));
    bytes = generated.get(width)!;
    model = `inception-v3-random@${width}`;
  }
  const ort = await onnxRuntime();
  const session = await onnxSession(bytes, options.device);
  const u = seeded(1);
  const x = new ort.Tensor('float32', Float32Array.from({ length: batch * 3 * 299 * 299 }, u), [batch, 3, 299, 299]);
  const input = session.inputNames[0];
  const output = session.outputNames[0];
  const run = async () => (await session.run({ [input]: x }, [output]))[output].dispose();
  await run();
  const start = performance.now();
  for (let i = 0; i < batches; i++) await run();
  const seconds = (performance.now() - start) / 1000;
  x.dispose();
  await session.release();
  return {
    device: options.device,
    imagesPerSecond: (batch * batches) / seconds,
    model,
    batch,
    description: await describeOnnxDevice(options.device),
  };
}

/** The line printed per device. */
export const throughputLine = (r: FidThroughput) =>
  `fid_images_per_s device=${r.device} value=${r.imagesPerSecond.toFixed(3)} batch=${r.batch} model=${r.model}`;

if (process.argv[1] && basename(process.argv[1]) === 'fid-throughput.ts') {
  const args = new Map<string, string>();
  for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
  const devices = (args.get('device') ?? 'cpu').split(',') as OnnxDevice[];
  for (const d of devices)
    if (!ONNX_DEVICES.includes(d)) throw new Error(`--device ${d}: use ${ONNX_DEVICES.join(', ')} (a comma list)`);
  const results: FidThroughput[] = [];
  for (const device of devices) {
    const r = await fidThroughput({
      device,
      model: args.get('model') ?? process.env.MDM_INCEPTION_ONNX,
      batch: Number(args.get('batch') ?? 8),
      batches: Number(args.get('batches') ?? 3),
      width: Number(args.get('width') ?? 1),
    });
    results.push(r);
    console.log(`# ${r.description}`);
    console.log(throughputLine(r));
  }
  const [first] = results;
  for (const r of results.slice(1)) {
    const ratio = r.imagesPerSecond / first.imagesPerSecond;
    console.log(`fid_ratio device=${r.device} over=${first.device} value=${ratio.toFixed(3)}`);
  }
}
