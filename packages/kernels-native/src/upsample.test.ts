import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-layers'; // registers tfjs-core's gradients, as backends' initBackend does
import * as tf from '@tensorflow/tfjs-core';
import { UPSAMPLE_2X, registerKernelOverrides, upsampleNearest2x } from '@matryoshka-ts/kernels';
import { seeded } from '@matryoshka-ts/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';
import { type NativeBase, registerNativeKernels, unregisterNativeKernels } from './register.js';

// The native 2× nearest upsampling and its gradient against tfjs's resize and 6-D sum on the
// stock cpu backend: the copy is exact, the 2×2 sums agree to float32 rounding.
const haveAddon = loadAddon().addon !== undefined;

const uniform = seeded(3);
const rand = () => uniform() * 2 - 1; // in [-1, 1)

function runCase(shape: [number, number, number, number], xs: Float32Array, rs: Float32Array) {
  return tf.tidy(() => {
    const x = tf.tensor4d(xs, shape);
    const r = tf.tensor4d(rs, [shape[0], 2 * shape[1], 2 * shape[2], shape[3]]);
    const y = upsampleNearest2x(x);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(upsampleNearest2x(v as tf.Tensor4D), r)))(x);
    return { y: Array.from(y.dataSync()), g: g.dataSync() as Float32Array };
  });
}

beforeAll(() => {
  tf.env().set('IS_TEST', true);
  registerKernelOverrides();
});
afterAll(() => {
  unregisterNativeKernels('cpu');
  unregisterNativeKernels('wasm');
});

describe.skipIf(!haveAddon)('native upsampleNearest2x', () => {
  for (const base of ['wasm', 'cpu'] as NativeBase[])
    it.each([[[2, 3, 5, 4]], [[1, 1, 1, 3]], [[3, 4, 2, 8]]] as [[number, number, number, number]][])(
      `${base}: values and gradient equal tfjs's on cpu, shape %j`,
      async (shape) => {
        const n = shape.reduce((a, b) => a * b, 1);
        const xs = Float32Array.from({ length: n }, rand),
          rs = Float32Array.from({ length: 4 * n }, rand);
        unregisterNativeKernels('cpu');
        await tf.setBackend('cpu');
        const want = runCase(shape, xs, rs);
        registerNativeKernels(base);
        await tf.setBackend(base);
        expect(tf.getKernel(UPSAMPLE_2X, base)).toBeDefined();
        const got = runCase(shape, xs, rs);
        unregisterNativeKernels(base);
        expect(got.y).toEqual(want.y);
        // Sums of 4 values |x| ≤ 1 in another order: a few float32 ulps.
        got.g.forEach((v, i) => expect(Math.abs(v - want.g[i])).toBeLessThanOrEqual(1e-6));
      },
    );
});
