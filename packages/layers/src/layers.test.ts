import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { upsampleNearest2x } from './layers.js';

describe.each(['cpu', 'wasm'] as const)('upsampleNearest2x on %s', (backend) => {
  beforeAll(async () => {
    await initBackend({ backend, quiet: true });
  });

  it('copies pixel (⌊y/2⌋, ⌊x/2⌋), and its gradient sums each 2×2 block', () => {
    const rng = new Rng(4);
    const x = rng.normalTensor([2, 3, 5, 4]) as tf.Tensor4D;
    const r = rng.normalTensor([2, 6, 10, 4]) as tf.Tensor4D;
    const y = upsampleNearest2x(x).arraySync();
    const xs = x.arraySync();
    for (let b = 0; b < 2; b++)
      for (let i = 0; i < 6; i++) for (let j = 0; j < 10; j++) expect(y[b][i][j]).toEqual(xs[b][i >> 1][j >> 1]);
    const g = tf
      .grad((v: tf.Tensor) => tf.sum(tf.mul(upsampleNearest2x(v as tf.Tensor4D), r)))(x)
      .arraySync() as number[][][][];
    const rs = r.arraySync();
    for (let b = 0; b < 2; b++)
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 5; j++)
          for (let c = 0; c < 4; c++) {
            const want =
              rs[b][2 * i][2 * j][c] +
              rs[b][2 * i + 1][2 * j][c] +
              rs[b][2 * i][2 * j + 1][c] +
              rs[b][2 * i + 1][2 * j + 1][c];
            // float32 sum of four O(1) terms.
            expect(Math.abs(g[b][i][j][c] - want)).toBeLessThan(1e-5);
          }
  });
});
