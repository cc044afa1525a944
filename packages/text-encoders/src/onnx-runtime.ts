import { BackendError, DataError } from '@matryoshka-ts/core';
import type * as Ort from 'onnxruntime-node';

// A small copy of @matryoshka-ts/metrics' helper: metrics depends on this package, so this
// package cannot import it from there.

const INSTALL_HINT =
  'Install it with `ONNXRUNTIME_NODE_INSTALL=skip pnpm add onnxruntime-node` ' +
  '(the CPU build is in the npm package; the skip avoids its CUDA download).';

/**
 * ONNX Runtime for Node, imported on first use: it is an optional peer dependency, needed only
 * by the ONNX text encoders.
 */
export async function onnxRuntime(): Promise<typeof Ort> {
  try {
    return (await import('onnxruntime-node')) as typeof Ort;
  } catch (error) {
    const why = (error as Error).message;
    throw new BackendError(
      `onnxruntime-node is needed to run ONNX text encoders and could not be loaded (${why}). ${INSTALL_HINT}`,
      { cause: error },
    );
  }
}

/**
 * A session on a model FILE (not its bytes: large encoders keep their weights in external data
 * files next to the graph, which ONNX Runtime finds relative to the model's path). `cuda` puts
 * the CPU after CUDA, for the few operators CUDA lacks.
 */
export async function onnxSessionFromFile(path: string, device: 'cpu' | 'cuda' = 'cpu'): Promise<Ort.InferenceSession> {
  const ort = await onnxRuntime();
  try {
    return await ort.InferenceSession.create(path, {
      executionProviders: device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    });
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
