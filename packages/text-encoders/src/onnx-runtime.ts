import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { BackendError, DataError } from '@matryoshka-ts/core';

// onnxruntime-node is an optional peer dependency: its installer downloads CUDA files from outside
// the npm registry, so a default install of our packages must not pull it in. The part of its API
// we use is declared here, so that no published .d.ts imports it (a consumer without it would fail
// `tsc` without skipLibCheck); onnx-runtime.types.test.ts checks that the real module fits.

/** An ONNX Runtime tensor, as far as this project reads one. */
export interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
  dispose(): void;
}

/** What a session reports about one input or output (onnxruntime ≥ 1.22; older ones give none). */
export type OrtValueMetadata =
  | {
      readonly name: string;
      readonly isTensor: true;
      readonly type: string;
      readonly shape: readonly (number | string)[];
    }
  | { readonly name: string; readonly isTensor: false };

export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly OrtValueMetadata[];
  readonly outputMetadata?: readonly OrtValueMetadata[];
  run(feeds: Record<string, OrtTensor>, fetches: readonly string[]): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}

/** The onnxruntime-node module: tensors and sessions. */
export interface OrtRuntime {
  Tensor: {
    new (type: 'float32', data: Float32Array, dims: readonly number[]): OrtTensor;
    new (type: 'int32', data: Int32Array, dims: readonly number[]): OrtTensor;
    new (type: 'int64', data: BigInt64Array, dims: readonly number[]): OrtTensor;
  };
  InferenceSession: {
    create(model: string | Uint8Array, options: { executionProviders: string[] }): Promise<OrtSession>;
  };
}

/** Where each session may run: `cuda` puts the CPU after CUDA, for the few operators CUDA lacks. */
export type OnnxDevice = 'cpu' | 'cuda';

export const ONNX_RUNTIME_INSTALL_HINT =
  'Install it next to your app: `ONNXRUNTIME_NODE_INSTALL=skip npm i onnxruntime-node` ' +
  '(or `pnpm add` / `yarn add` with the same variable). The CPU build is in the npm package; ' +
  'the variable skips its installer, which otherwise downloads CUDA files from outside the npm registry.';

/**
 * ONNX Runtime for Node, imported on first use. Needed only for ONNX models: frozen text encoders,
 * Inception and CLIP for FID and CLIP scores, I3D for FVD, LPIPS.
 */
export async function onnxRuntime(): Promise<OrtRuntime> {
  // A variable, so that bundlers and tsc leave the optional import alone.
  const name = 'onnxruntime-node';
  try {
    return (await import(name)) as OrtRuntime;
  } catch (error) {
    const why = (error as Error).message.split('\n')[0];
    throw new BackendError(
      `onnxruntime-node is needed to run ONNX models and could not be loaded (${why}). ${ONNX_RUNTIME_INSTALL_HINT}`,
      { cause: error },
    );
  }
}

/** An ONNX model file and its content hash (ids name the exact weights, not the file name). */
export function readOnnxFile(path: string): { bytes: Uint8Array; tag: string } {
  if (!existsSync(path)) throw new DataError(`no ONNX model at ${path}`);
  const bytes = new Uint8Array(readFileSync(path));
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 12);
  return { bytes, tag: `${basename(path)}#${hash}` };
}

const providers = (device: OnnxDevice) => (device === 'cuda' ? ['cuda', 'cpu'] : ['cpu']);

/** A session on a model's bytes, on the CPU or, when `device` asks for it, on CUDA. */
export async function onnxSession(bytes: Uint8Array, device: OnnxDevice = 'cpu'): Promise<OrtSession> {
  const ort = await onnxRuntime();
  return ort.InferenceSession.create(bytes, { executionProviders: providers(device) });
}

/**
 * A session on a model FILE (not its bytes: large encoders keep their weights in external data
 * files next to the graph, which ONNX Runtime finds relative to the model's path).
 */
export async function onnxSessionFromFile(path: string, device: OnnxDevice = 'cpu'): Promise<OrtSession> {
  const ort = await onnxRuntime();
  try {
    return await ort.InferenceSession.create(path, { executionProviders: providers(device) });
  } catch (error) {
    const message = (error as Error).message;
    if (device === 'cuda' && /cuda|providers_shared|shared library/i.test(message)) {
      throw new BackendError(
        `ONNX Runtime could not start CUDA for ${path} (${message.split('\n')[0]}). ` +
          `The npm package ships the CPU build only; ` +
          `the CUDA provider libraries (libonnxruntime_providers_cuda.so, libonnxruntime_providers_shared.so) ` +
          `are fetched by its install script with ONNXRUNTIME_NODE_INSTALL=cuda12 ` +
          `and need CUDA 12 + cuDNN 9 on the machine. Use device: 'cpu' otherwise.`,
      );
    }
    throw new DataError(`ONNX Runtime could not load ${path}: ${message}`);
  }
}
