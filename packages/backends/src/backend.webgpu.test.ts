import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { underCi } from '@matryoshka-ts/test-utils';
import { Rng } from '@matryoshka-ts/core';
import { groupNormAct } from '@matryoshka-ts/kernels';
import { initBackend } from './backend.js';
import { webGpuErrors } from './webgpu.js';

// WebGPU through Dawn on Mesa's software renderer (llvmpipe, OpenGL through EGL's surfaceless
// platform): what CI has. The kernels the NestedUNet's forward pass is made of must give the cpu
// backend's values. Reads are asynchronous: dataSync needs a browser's OffscreenCanvas.
process.env.MDM_WEBGPU_BACKEND ??= 'opengl';
// Mesa's EGL and llvmpipe are on CI's image; elsewhere a machine without them skips (CI fails).
const webgpu = await initBackend({ backend: 'webgpu', quiet: true }).then(
  () => true,
  () => false,
);
await initBackend({ backend: 'cpu', quiet: true });

/** Runs `f` on cpu and on webgpu from the same inputs (made on each backend from plain arrays). */
async function both(f: () => tf.Tensor): Promise<{ cpu: Float32Array; gpu: Float32Array }> {
  await initBackend({ backend: 'cpu', quiet: true });
  const onCpu = f();
  const cpu = (await onCpu.data()) as Float32Array;
  onCpu.dispose();
  await initBackend({ backend: 'webgpu', quiet: true });
  const onGpu = f();
  const gpu = (await onGpu.data()) as Float32Array;
  onGpu.dispose();
  return { cpu, gpu };
}
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const values = (seed: number, n: number) => new Rng(seed).normals(n);

afterAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

describe.runIf(webgpu || underCi())('the webgpu backend (Dawn, software OpenGL)', () => {
  it('starts, naming the adapter and that it is a software renderer', async () => {
    const info = await initBackend({ backend: 'webgpu', quiet: true });
    expect(info.name).toBe('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    expect(info.description).toMatch(/^webgpu \(Dawn: .+\)/);
    // llvmpipe here; on a machine with a GPU and MDM_WEBGPU_BACKEND=vulkan, the GPU's name.
    if (/llvmpipe/i.test(info.description)) expect(info.description).toMatch(/software renderer/);
  });

  // float32 on both; the GPU sums in another order (workgroup tiles): 1e-4 on values of size ~1-10.
  it('convolution + bias, matMul, softmax, GroupNorm + SiLU and 2× upsampling match the cpu backend', async () => {
    const x = values(1, 2 * 8 * 8 * 16);
    const w = values(2, 3 * 3 * 16 * 32).map((v) => v * 0.1);
    const b = values(3, 32);
    const conv = await both(() =>
      tf.tidy(() => tf.add(tf.conv2d(tf.tensor4d(x, [2, 8, 8, 16]), tf.tensor4d(w, [3, 3, 16, 32]), 1, 'same'), b)),
    );
    expect(maxDiff(conv.cpu, conv.gpu)).toBeLessThan(1e-4);
    const mm = await both(() =>
      tf.tidy(() =>
        tf.softmax(
          tf.matMul(tf.tensor2d(x.subarray(0, 64 * 32), [64, 32]), tf.tensor2d(w.subarray(0, 32 * 48), [32, 48])),
        ),
      ),
    );
    expect(maxDiff(mm.cpu, mm.gpu)).toBeLessThan(1e-5);
    const gamma = values(4, 16);
    const beta = values(5, 16);
    const norm = await both(() =>
      tf.tidy(() =>
        groupNormAct(tf.tensor4d(x, [2, 8, 8, 16]), tf.tensor1d(gamma), tf.tensor1d(beta), {
          groups: 4,
          eps: 1e-5,
          silu: true,
        }),
      ),
    );
    expect(maxDiff(norm.cpu, norm.gpu)).toBeLessThan(1e-4);
    const up = await both(() => tf.tidy(() => tf.image.resizeNearestNeighbor(tf.tensor4d(x, [2, 8, 8, 16]), [16, 16])));
    expect(maxDiff(up.cpu, up.gpu)).toBe(0);
  }, 120_000);

  it('computes gradients (the conv filter gradient, through our registered ones)', async () => {
    const x = values(6, 1 * 6 * 6 * 4);
    const w = values(7, 3 * 3 * 4 * 8);
    const grads = await both(() =>
      tf.tidy(() => {
        const input = tf.tensor4d(x, [1, 6, 6, 4]);
        const g = tf.grad((f) => tf.sum(tf.square(tf.conv2d(input, f as tf.Tensor4D, 1, 'same'))))(
          tf.tensor4d(w, [3, 3, 4, 8]),
        );
        return g;
      }),
    );
    // Sums of ~100 products of size ~10: float32 rounding in another order, relative 1e-5.
    const scale = Math.max(...grads.cpu.map(Math.abs));
    expect(maxDiff(grads.cpu, grads.gpu) / scale).toBeLessThan(1e-5);
  }, 120_000);

  it('adds many tensors (AddN over more inputs than a shader may bind) with no device error', async () => {
    // 170 inputs, as a global gradient norm over a UNet's tensors: past the 8 storage buffers a
    // shader may bind, tfjs's own AddN fails validation and returns zeros.
    const parts = Array.from({ length: 170 }, (_, i) => values(100 + i, 5));
    const sums = await both(() => tf.tidy(() => tf.addN(parts.map((p) => tf.tensor1d(p)))));
    // Sums of 170 values of size ~1: float32 rounding in another order.
    expect(maxDiff(sums.cpu, sums.gpu)).toBeLessThan(1e-4);
    expect(sums.gpu.some((v) => v !== 0)).toBe(true);
    await initBackend({ backend: 'webgpu', quiet: true });
    const before = tf.memory().numTensors;
    const inputs = parts.map((p) => tf.tensor1d(p));
    const sum = tf.addN(inputs);
    await sum.data();
    tf.dispose([sum, ...inputs]);
    // The partial sums are freed inside the kernel.
    expect(tf.memory().numTensors).toBe(before);
    expect(webGpuErrors()).toEqual([]);
  }, 120_000);
});
