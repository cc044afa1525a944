import type * as Ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { OrtRuntime, OrtSession, OrtTensor } from './onnx-runtime.js';
import { onnxRuntime } from './onnx-runtime.js';

// Our declaration of onnxruntime-node's API (onnx-runtime.ts) must stay a view of the real one:
// `pnpm typecheck` fails here when the installed onnxruntime-node no longer fits it.
type Fits<Real extends Ours, Ours> = Real;
export type RuntimeFits = Fits<typeof Ort, OrtRuntime>;
export type SessionFits = Fits<Ort.InferenceSession, OrtSession>;
export type TensorFits = Fits<Ort.Tensor, OrtTensor>;

describe('onnxRuntime', () => {
  it('loads the real module with the tensor and session classes declared', async () => {
    const ort = await onnxRuntime();
    const t = new ort.Tensor('int64', BigInt64Array.from([1n, 2n]), [1, 2]);
    expect(t.type).toBe('int64');
    expect(t.dims).toEqual([1, 2]);
    t.dispose();
    expect(typeof ort.InferenceSession.create).toBe('function');
  });
});
