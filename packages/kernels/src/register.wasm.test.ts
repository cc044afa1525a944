import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerKernelOverrides } from './register.js';
import { maxAbs, maxAbsDiff, randomF32, seeded } from './test-helpers.js';

// The stock wasm backend has no Conv2DBackpropFilter kernel; this file checks that the override
// makes conv2d filter gradients work there, and that they equal the cpu backend's.

interface Case {
  name: string;
  xShape: [number, number, number, number];
  filterShape: [number, number, number, number];
  strides: number | [number, number];
  pad: 'same' | 'valid' | number[][];
}

const cases: Case[] = [
  { name: '3×3 same stride 1', xShape: [2, 7, 5, 3], filterShape: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: '3×3 same stride 2', xShape: [1, 7, 5, 3], filterShape: [3, 3, 3, 2], strides: 2, pad: 'same' },
  { name: '2×3 valid stride 1', xShape: [3, 6, 7, 2], filterShape: [2, 3, 2, 3], strides: 1, pad: 'valid' },
  { name: '1×1 valid stride 2', xShape: [2, 5, 5, 4], filterShape: [1, 1, 4, 6], strides: 2, pad: 'valid' },
  {
    name: '3×3 explicit padding',
    xShape: [1, 5, 6, 2],
    filterShape: [3, 3, 2, 2],
    strides: 1,
    pad: [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ],
  },
];

function data(c: Case) {
  const rand = seeded(c.xShape.reduce((a, b) => a * 7 + b, c.filterShape[3]));
  const x = randomF32(
    rand,
    c.xShape.reduce((a, b) => a * b, 1),
  );
  const w = randomF32(
    rand,
    c.filterShape.reduce((a, b) => a * b, 1),
  );
  const info = tf.backend_util.computeConv2DInfo(c.xShape, c.filterShape, c.strides, 1, c.pad as 'same', 'floor');
  const r = randomF32(rand, info.batchSize * info.outHeight * info.outWidth * info.outChannels);
  return { x, w, r, outShape: [info.batchSize, info.outHeight, info.outWidth, info.outChannels] };
}

/** Σ R·tanh(conv(x, w)) (a nonlinearity, so dy is not constant), grads w.r.t. x and w. */
function grads(c: Case): { dx: Float32Array; dw: Float32Array; loss: number } {
  const d = data(c);
  return tf.tidy(() => {
    const r = tf.tensor4d(d.r, d.outShape as [number, number, number, number]);
    const f = (x: tf.Tensor, w: tf.Tensor) =>
      tf.sum(
        tf.mul(r, tf.tanh(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad as 'same'))),
      ) as tf.Scalar;
    const {
      value,
      grads: [dx, dw],
    } = tf.valueAndGrads(f)([tf.tensor4d(d.x, c.xShape), tf.tensor4d(d.w, c.filterShape)]);
    return { dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array, loss: value.dataSync()[0] };
  });
}

beforeAll(() => {
  tf.env().set('IS_TEST', true);
});

describe('conv2d gradients on wasm', () => {
  it('without the override, the stock wasm backend cannot compute the filter gradient', async () => {
    expect(await tf.setBackend('wasm')).toBe(true);
    expect(tf.getBackend()).toBe('wasm');
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(() => grads(cases[0])).toThrow(/Conv2DBackpropFilter/);
  });

  it.each(cases.map((c) => [c.name, c] as const))('with the override, wasm equals cpu: %s', async (_name, c) => {
    registerKernelOverrides();
    expect(await tf.setBackend('cpu')).toBe(true);
    const cpu = grads(c);
    expect(await tf.setBackend('wasm')).toBe(true);
    const before = tf.memory().numTensors;
    const wasm = grads(c);
    expect(tf.memory().numTensors).toBe(before); // nothing leaks on wasm either
    expect(wasm.dw.length).toBe(c.filterShape.reduce((a, b) => a * b, 1));
    expect(wasm.dx.length).toBe(c.xShape.reduce((a, b) => a * b, 1));
    // Different float32 kernels (XNNPACK convolution and matMul vs JS loops) sum the same terms
    // in different orders, and tanh may differ by an ulp or so: the difference is a few
    // n·u·Σ|terms| with n ≤ 108 terms, ≲ 1e-5 relative; 1e-4 of the largest entry leaves a
    // margin while any indexing error would be O(1).
    expect(Math.abs(wasm.loss - cpu.loss)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(cpu.loss)));
    expect(maxAbs(cpu.dw)).toBeGreaterThan(0.1);
    expect(maxAbsDiff(wasm.dw, cpu.dw)).toBeLessThanOrEqual(1e-4 * maxAbs(cpu.dw));
    expect(maxAbsDiff(wasm.dx, cpu.dx)).toBeLessThanOrEqual(1e-4 * maxAbs(cpu.dx));
  });
});
