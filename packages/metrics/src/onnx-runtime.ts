import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { BackendError, DataError } from '@matryoshka-ts/core';
import type * as Ort from 'onnxruntime-node';

/**
 * ONNX Runtime for Node, imported on first use: it is an optional peer dependency (its CPU build
 * ships in the npm package; where its installer cannot reach NuGet for the CUDA files, install
 * with ONNXRUNTIME_NODE_INSTALL=skip).
 */
export async function onnxRuntime(): Promise<typeof Ort> {
  try {
    return (await import('onnxruntime-node')) as typeof Ort;
  } catch (error) {
    throw new BackendError(
      `onnxruntime-node is needed to run ONNX models and could not be loaded (${(error as Error).message}). ` +
        `Install it with \`ONNXRUNTIME_NODE_INSTALL=skip pnpm add onnxruntime-node\` ` +
        `(the CPU build is in the npm package; the skip avoids its CUDA download).`,
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

/** Opens a session on the CPU, or on CUDA when `device` asks for it and the runtime has it. */
export async function onnxSession(bytes: Uint8Array, device: 'cpu' | 'cuda' = 'cpu'): Promise<Ort.InferenceSession> {
  const ort = await onnxRuntime();
  return ort.InferenceSession.create(bytes, { executionProviders: device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'] });
}
