import { describe, expect, it, vi } from 'vitest';
import { onnxRuntime } from './onnx-runtime.js';

// As if onnxruntime-node were not installed.
vi.mock('onnxruntime-node', () => {
  throw new Error("Cannot find package 'onnxruntime-node'");
});

describe('onnxRuntime', () => {
  it('says how to install onnxruntime-node when it cannot be loaded', async () => {
    const error = await onnxRuntime().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message).toMatch(/^onnxruntime-node is needed to run ONNX models and could not be loaded/);
    expect(error?.message).toContain('`ONNXRUNTIME_NODE_INSTALL=skip npm i onnxruntime-node`');
  });
});
