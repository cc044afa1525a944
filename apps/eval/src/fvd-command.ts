import { existsSync } from 'node:fs';
import { BackendError, ConfigError, DataError } from '@matryoshka-ts/core';
import {
  FeatureStats,
  type OnnxDevice,
  type Uint8Image,
  frechetDistance,
  onnxRuntime,
  onnxSession,
  pytorchFidResize,
  readOnnxFile,
} from '@matryoshka-ts/metrics';
import { ProgressLine } from '@matryoshka-ts/pipelines';
import { type Clip, readClips } from './clips.js';

/**
 * FVD (Unterthiner et al. 2018): the Fréchet distance between Gaussians fitted to I3D features of
 * real and generated clips. The I3D network is the user's, as ONNX (docs/evaluation.md, "Video",
 * says how to export the PyTorch port the common FVD implementations use); nothing is downloaded.
 */

export const I3D_DOCS = 'docs/evaluation.md, section "Video"';

/** How frames reach the network, in words (recorded in every report). */
const preprocessing = (size: number) =>
  `torch bilinear (align_corners=False) to ${size}×${size}, [−1, 1], NCTHW [N, 3, T, ${size}, ${size}]`;

/** A video network: clips in, one feature vector per clip out. */
export interface VideoFeatureExtractor {
  /** Names the network (file name and content hash) and its input size. */
  readonly id: string;
  /** Frame edge length fed to the network. */
  readonly size: number;
  readonly preprocessing: string;
  /** Features of clips of equal frame count: [N, dim] row-major, dim = output values per clip. */
  features(clips: Uint8Image[][]): Promise<{ data: Float32Array; dim: number }>;
  dispose(): Promise<void> | void;
}

/**
 * One network input batch: each frame resized like torch's bilinear interpolate (align_corners=False)
 * to size×size, scaled to [−1, 1], laid out [N, 3, T, size, size] (NCTHW, as PyTorch I3D ports take).
 */
export function i3dInputBatch(clips: Uint8Image[][], size: number): Float32Array {
  if (!clips.length) return new Float32Array(0);
  const t = clips[0].length;
  const plane = size * size;
  const out = new Float32Array(clips.length * 3 * t * plane);
  clips.forEach((frames, n) => {
    if (frames.length !== t) throw new Error(`i3dInputBatch: clips of ${t} and ${frames.length} frames in one batch`);
    frames.forEach((frame, f) => {
      if (frame.channels !== 3) throw new Error(`i3dInputBatch: frames must be RGB, got ${frame.channels} channels`);
      const r = pytorchFidResize(frame, size).data; // HWC in [0, 1]
      for (let c = 0; c < 3; c++) {
        const base = ((n * 3 + c) * t + f) * plane;
        for (let p = 0; p < plane; p++) out[base + p] = r[p * 3 + c] * 2 - 1;
      }
    });
  });
  return out;
}

/** Opens an I3D (or any video network) ONNX file taking [N, 3, T, size, size] in [−1, 1]. */
export async function loadI3d(
  path: string,
  options: { size?: number; device?: OnnxDevice } = {},
): Promise<VideoFeatureExtractor> {
  const size = options.size ?? 224;
  if (!Number.isInteger(size) || size < 1) throw new ConfigError(`--i3d-size must be a positive integer, got ${size}`);
  const { bytes, tag } = readOnnxFile(path);
  const ort = await onnxRuntime();
  let session: Awaited<ReturnType<typeof onnxSession>>;
  try {
    session = await onnxSession(bytes, options.device);
  } catch (error) {
    // A device that cannot start (no CUDA files, no WebGPU adapter) says what to install.
    if (error instanceof BackendError) throw error;
    throw new DataError(`--i3d ${path}: not a usable ONNX model (${(error as Error).message})`, { cause: error });
  }
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  return {
    id: `i3d:${tag}@${size}`,
    size,
    preprocessing: preprocessing(size),
    async features(clips) {
      if (!clips.length) return { data: new Float32Array(0), dim: 0 };
      const t = clips[0].length;
      const x = new ort.Tensor('float32', i3dInputBatch(clips, size), [clips.length, 3, t, size, size]);
      let data: Float32Array;
      try {
        const result = await session.run({ [inputName]: x }, [outputName]);
        data = Float32Array.from(result[outputName].data as Float32Array);
        result[outputName].dispose();
      } catch (error) {
        throw new DataError(
          `--i3d ${path} did not take [${clips.length}, 3, ${t}, ${size}, ${size}] ` +
            `(${(error as Error).message.split('\n')[0]}); check the export's input size (--i3d-size) and frame count`,
          { cause: error },
        );
      } finally {
        x.dispose();
      }
      if (data.length % clips.length !== 0)
        throw new DataError(`--i3d ${path}: ${data.length} output values for ${clips.length} clips`);
      return { data, dim: data.length / clips.length };
    },
    dispose: () => session.release(),
  };
}

export interface VideoStats {
  stats: FeatureStats;
  /** Clips read. */
  n: number;
  /** The frame counts seen, ascending (one value for a uniform set). */
  frames: number[];
  skipped: Record<string, number>;
}

/**
 * Streams the clips of `source` through `extractor` in batches (clips of one frame count per batch)
 * into float64 feature statistics; bad clips are skipped and counted.
 */
export async function videoStats(
  extractor: VideoFeatureExtractor,
  source: string,
  options: { batchSize?: number; onBatch?: (done: number) => void } = {},
): Promise<VideoStats> {
  const batchSize = options.batchSize ?? 8;
  const skipped: Record<string, number> = {};
  const frameCounts = new Set<number>();
  let stats: FeatureStats | undefined;
  let batch: Clip[] = [];
  const flush = async () => {
    if (!batch.length) return;
    const { data, dim } = await extractor.features(batch.map((c) => c.frames));
    stats ??= new FeatureStats(dim);
    if (dim !== stats.dim)
      throw new DataError(`${source}: the video network gave ${dim} features per clip, earlier ${stats.dim}`);
    stats.add(data);
    batch = [];
    options.onBatch?.(stats.count);
  };
  for await (const clip of readClips(source, { skipped })) {
    if (batch.length && (batch.length === batchSize || clip.frames.length !== batch[0].frames.length)) await flush();
    frameCounts.add(clip.frames.length);
    batch.push(clip);
  }
  await flush();
  const n = stats?.count ?? 0;
  if (!stats || n < 2) throw new DataError(`${source}: ${n} clip(s) read; FVD statistics need at least 2`);
  return { stats, n, frames: [...frameCounts].sort((a, b) => a - b), skipped };
}

export interface FvdCommandOptions {
  samples: string;
  reference: string;
  /** The I3D network as ONNX; required (the command explains where to get one when it is missing). */
  i3d?: string;
  /** Frame size fed to the network (default 224). */
  i3dSize?: number;
  /** Clips per network batch (default 8). */
  batch?: number;
  device?: OnnxDevice;
}

/** One set's frame count(s) as reported: a number for a uniform set, else the list. */
const framesLabel = (frames: number[]) => (frames.length === 1 ? frames[0] : frames);

/**
 * `mdm-eval fvd`: FVD of sample clips against reference clips (each a folder of clip folders or
 * GIFs, or a `generate` video samples directory), with I3D features from `--i3d`.
 */
export async function fvdCommand(options: FvdCommandOptions) {
  if (options.i3d === undefined)
    throw new ConfigError(
      `fvd needs an I3D network as ONNX: --i3d <model.onnx>. This project downloads no weights; ` +
        `${I3D_DOCS} says how to export one from PyTorch`,
    );
  if (!existsSync(options.i3d))
    throw new ConfigError(`--i3d ${options.i3d}: no such file (${I3D_DOCS} says how to export one)`);
  if (options.batch !== undefined && !(Number.isInteger(options.batch) && options.batch >= 1))
    throw new ConfigError(`--batch must be a positive integer, got ${options.batch}`);
  const extractor = await loadI3d(options.i3d, { size: options.i3dSize, device: options.device });
  const progress = new ProgressLine(10);
  try {
    const counter = (what: string) => (done: number) => progress.update(`${what}: ${done} clips`);
    const reference = await videoStats(extractor, options.reference, {
      batchSize: options.batch,
      onBatch: counter('reference I3D features'),
    });
    const samples = await videoStats(extractor, options.samples, {
      batchSize: options.batch,
      onBatch: counter('sample I3D features'),
    });
    progress.done();
    if (samples.stats.dim !== reference.stats.dim)
      throw new DataError(
        `I3D features of the samples have d = ${samples.stats.dim}, the reference's ${reference.stats.dim}`,
      );
    const a = samples.stats.fidStats();
    const b = reference.stats.fidStats();
    const fvd = frechetDistance(a.mu, a.sigma, b.mu, b.sigma);
    if (!Number.isFinite(fvd))
      throw new DataError(
        `the Fréchet distance of ${options.samples} to the reference came out ${fvd} (non-finite features?)`,
      );
    return {
      fvd,
      n: samples.n,
      frames: framesLabel(samples.frames),
      samples: options.samples,
      reference: {
        source: options.reference,
        n: reference.n,
        frames: framesLabel(reference.frames),
        ...(Object.keys(reference.skipped).length ? { skipped: reference.skipped } : {}),
      },
      i3d: extractor.id,
      dim: samples.stats.dim,
      preprocessing: extractor.preprocessing,
      ...(Object.keys(samples.skipped).length ? { skipped: samples.skipped } : {}),
    };
  } finally {
    await extractor.dispose();
  }
}
