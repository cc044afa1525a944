import { BackendError } from '@matryoshka-ts/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type OnnxDevice, describeOnnxDevice, onnxSession, onnxSessionFromFile } from './onnx-runtime.js';

// onnxruntime-node as a build without the WebGPU provider, or one whose Dawn finds no adapter
// (the real module's behaviour on a machine without Vulkan; onnx-webgpu.test.ts in metrics runs
// the real provider).
const ort = vi.hoisted(() => ({
  providers: ['cpu', 'webgpu'],
  failure: undefined as string | undefined,
  created: [] as string[][],
}));
vi.mock('onnxruntime-node', () => ({
  env: { versions: { common: '1.30.0' } },
  listSupportedBackends: () => ort.providers.map((name) => ({ name, bundled: true })),
  InferenceSession: {
    create: async (_model: unknown, options: { executionProviders: string[] }) => {
      ort.created.push(options.executionProviders);
      if (ort.failure) throw new Error(ort.failure);
      return { inputNames: [], outputNames: [], run: async () => ({}), release: async () => {} };
    },
  },
}));

const ADAPTER_FAILURE =
  '/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::' +
  'Initialize(...) adapter_result.status == wgpu::RequestAdapterStatus::Success was false. ' +
  'Failed to get a WebGPU adapter: No supported adapters';

afterEach(() => {
  ort.providers = ['cpu', 'webgpu'];
  ort.failure = undefined;
  ort.created = [];
});

describe("ONNX Runtime's webgpu device", () => {
  it('asks for the WebGPU provider first, then the CPU for the operators it lacks', async () => {
    await onnxSession(new Uint8Array(1), 'webgpu');
    await onnxSession(new Uint8Array(1), 'cpu');
    await onnxSession(new Uint8Array(1), 'cuda');
    expect(ort.created).toEqual([['webgpu', 'cpu'], ['cpu'], ['cuda', 'cpu']]);
  });

  it('says which platforms have the provider when this build lacks it', async () => {
    ort.providers = ['cpu'];
    const error = await onnxSession(new Uint8Array(1), 'webgpu').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    expect((error as Error).message).toMatch(
      /^onnxruntime-node 1\.30\.0 for \w+-\w+ has no WebGPU execution provider \(it has cpu\)\. .*Linux x64/,
    );
    expect(ort.created).toEqual([]);
  });

  it('says what to install when Dawn finds no adapter, for bytes and for files', async () => {
    ort.failure = ADAPTER_FAILURE;
    for (const open of [
      () => onnxSession(new Uint8Array(1), 'webgpu'),
      () => onnxSessionFromFile('m.onnx', 'webgpu'),
    ]) {
      const error = await open().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackendError);
      const message = (error as Error).message;
      expect(message).toMatch(
        /^ONNX Runtime's WebGPU provider found no adapter \(Failed to get a WebGPU adapter: No supported adapters\)\./,
      );
      if (process.platform === 'linux') expect(message).toMatch(/Vulkan ICD .*mesa-vulkan-drivers.*lavapipe\.sh/);
      expect(message).toMatch(/Use device 'cpu' otherwise\.$/);
    }
  });

  it('refuses a device it does not know', async () => {
    await expect(onnxSession(new Uint8Array(1), 'tpu' as OnnxDevice)).rejects.toThrow(
      "unknown ONNX Runtime device 'tpu' (use cpu, cuda, webgpu)",
    );
  });

  it('names the device as it prints it', async () => {
    expect(await describeOnnxDevice('cpu')).toBe('cpu (ONNX Runtime 1.30.0)');
    expect(await describeOnnxDevice('cuda')).toBe(
      "cuda (ONNX Runtime 1.30.0's CUDA provider; cpu for the operators it lacks)",
    );
    expect(await describeOnnxDevice('webgpu')).toMatch(
      /^webgpu \(ONNX Runtime 1\.30\.0's Dawn.*: .+; cpu for the operators/,
    );
  });
});
