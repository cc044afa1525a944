import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-layers'; // registers tfjs-core's gradients, as backends' initBackend does
import * as tf from '@tensorflow/tfjs-core';
import { maxAbsDiff, seeded } from '@matryoshka-ts/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';
import { registerNativeKernels, unregisterNativeKernels } from './register.js';

// Concat, SplitV and Slice as the addon's row copies (native/copy_rows.cc) on wasm, against the
// stock cpu kernels: copies, so equal to the bit. Skips where the addon could not be built
// (register.test.ts fails instead under MDM_REQUIRE_NATIVE=1).
const haveAddon = loadAddon().addon !== undefined;

let uniform = seeded(1);
/** Restarts the generator, so two backends' runs draw the same data. */
const reseed = (seed: number) => (uniform = seeded(seed));
const randoms = (shape: number[]) =>
  Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => uniform() * 2 - 1);

/**
 * `results()` on the stock cpu backend (the reference), then on wasm with the native kernels, after
 * checking that they replaced `kernels` there (copies give the same numbers either way).
 */
async function cpuThenNativeWasm<T>(kernels: string[], results: () => T): Promise<[T, T]> {
  await tf.setBackend('cpu');
  const want = results();
  const stock = kernels.map((k) => tf.getKernel(k, 'wasm'));
  registerNativeKernels('wasm');
  expect(kernels.map((k) => tf.getKernel(k, 'wasm'))).not.toEqual(stock);
  await tf.setBackend('wasm');
  const got = results();
  unregisterNativeKernels('wasm');
  await tf.setBackend('cpu');
  return [want, got];
}

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  await tf.ready();
});
afterAll(() => unregisterNativeKernels('wasm'));

describe.skipIf(!haveAddon)('row-copy kernels match the stock cpu backend', () => {
  it('Concat and SplitV (row copies) equal the stock kernels on every axis, with their gradients', async () => {
    const shapes: Array<[number[], number[], number]> = [
      [[2, 5, 3, 4], [2, 5, 3, 7], 3], // channels, as the UNet's skip connections
      [[2, 5, 3, 4], [2, 2, 3, 4], 1],
      [[3, 6], [2, 6], 0],
      [[1, 4, 1, 3], [1, 4, 2, 3], 2],
    ];
    const results = () =>
      shapes.map(([sa, sb, axis]) =>
        tf.tidy(() => {
          reseed(7);
          const a = tf.tensor(randoms(sa), sa);
          const b = tf.tensor(randoms(sb), sb);
          const c = tf.tensor(randoms(sa), sa);
          const y = tf.concat([a, b, c], axis);
          const parts = tf.split(y, [sa[axis], sb[axis], sa[axis]], axis);
          const r = tf.tensor(randoms(y.shape), y.shape);
          const [da, db] = tf.grads((p: tf.Tensor, q: tf.Tensor) =>
            tf.sum(
              tf.mul(r, tf.concat([p, q, tf.split(tf.concat([p, q], axis), [sa[axis], sb[axis]], axis)[0]], axis)),
            ),
          )([a, b]);
          return [y, ...parts, da, db].map((t) => t.dataSync() as Float32Array);
        }),
      );
    const [want, got] = await cpuThenNativeWasm(['Concat', 'SplitV'], results);
    // Copies are exact.
    got.forEach((g, i) => g.forEach((arr, j) => expect(maxAbsDiff(arr, want[i][j]), `case ${i} output ${j}`).toBe(0)));
  });

  it('Slice (row copies) equals the stock kernel for every rank and begin/size, int32 by fallback', async () => {
    // [shape, begin, size]: a weight's column block (attention q/k/v), a bias half, NHWC channel and
    // pixel blocks, size −1 (to the end), a slice of everything, an empty one, rank 5.
    const cases: Array<[number[], number[], number[]]> = [
      [
        [12, 9],
        [0, 3],
        [12, 3],
      ],
      [[10], [4], [5]],
      [
        [2, 5, 3, 8],
        [0, 0, 0, 4],
        [2, 5, 3, 4],
      ],
      [
        [2, 5, 3, 8],
        [1, 2, 1, 2],
        [1, 3, 2, 5],
      ],
      [
        [3, 4, 6],
        [1, 0, 0],
        [2, -1, -1],
      ],
      [
        [3, 4, 6],
        [0, 0, 0],
        [3, 4, 6],
      ],
      [
        [3, 4, 6],
        [0, 1, 2],
        [3, 0, 2],
      ],
      [
        [2, 3, 2, 2, 5],
        [1, 1, 0, 1, 1],
        [1, 2, 2, 1, 3],
      ],
    ];
    const results = () =>
      cases.map(([shape, begin, size]) =>
        tf.tidy(() => {
          reseed(9);
          const x = tf.tensor(randoms(shape), shape);
          const ints = tf.tensor(
            randoms(shape).map((v) => Math.round(v * 100)),
            shape,
            'int32',
          );
          return [tf.slice(x, begin, size), tf.slice(ints, begin, size)].map((t) => [...t.shape, ...t.dataSync()]);
        }),
      );
    const [want, got] = await cpuThenNativeWasm(['Slice'], results);
    // Copies are exact; shapes lead each list.
    got.forEach((g, i) => g.forEach((arr, j) => expect(arr, `case ${i} output ${j}`).toEqual(want[i][j])));
    expect(want[6][0].slice(0, 3)).toEqual([3, 0, 2]); // the empty case is there
  });
});
