import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { noiseLevels, noisyImage, velocity } from './forward-process.js';
import { leakedBy, maxAbsDiff, referenceElement, rngFor, uniformF32 } from './test-helpers.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const shape: [number, number, number, number] = [3, 4, 4, 2];
const per = 4 * 4 * 2;

function batch(seed: number) {
  const rng = rngFor(seed);
  const x0 = uniformF32(rng, 3 * per);
  const eps = uniformF32(rng, 3 * per, -3, 3);
  const gamma = uniformF32(rng, 3, 0.02, 0.98);
  return { x0, eps, gamma };
}

describe('forward process', () => {
  // float32: each result is two products and a sum of values of order 1, so ≤ 2e-6 absolute.
  it('x_t = √γ·x0 + √(1−γ)·ε and v = √γ·ε − √(1−γ)·x0 per sample, against float64', () => {
    const { x0, eps, gamma } = batch(1);
    const [tx0, teps, tg] = [tf.tensor4d(x0, shape), tf.tensor4d(eps, shape), tf.tensor1d(gamma)];
    const xt = noisyImage(tx0, teps, tg);
    const v = velocity(tx0, teps, tg);
    const refXt = Array.from(x0, (x, i) => referenceElement('v', 0, x, eps[i], gamma[Math.floor(i / per)]).xt);
    const refV = Array.from(
      x0,
      (x, i) => Math.sqrt(gamma[Math.floor(i / per)]) * eps[i] - Math.sqrt(1 - gamma[Math.floor(i / per)]) * x,
    );
    expect(maxAbsDiff(xt.dataSync(), refXt)).toBeLessThanOrEqual(2e-6);
    expect(maxAbsDiff(v.dataSync(), refV)).toBeLessThanOrEqual(2e-6);
    // The pair (x_t, v) is a rotation of (x0, ε): x0 = √γ·x_t − √(1−γ)·v (float32: ≤ 4e-6).
    const back = tf.sub(
      tf.mul(tf.reshape(tf.sqrt(tg), [-1, 1, 1, 1]), xt),
      tf.mul(tf.reshape(tf.sqrt(tf.sub(1, tg)), [-1, 1, 1, 1]), v),
    );
    expect(maxAbsDiff(back.dataSync(), x0)).toBeLessThanOrEqual(4e-6);
    tf.dispose([tx0, teps, tg, xt, v, back]);
  });

  it('noiseLevels noises every level with its own γ and owns its tensors', () => {
    const a = batch(2);
    const b = batch(3);
    const small: [number, number, number, number] = [3, 2, 2, 2];
    const x0 = [tf.tensor4d(a.x0, shape), tf.tensor4d(b.x0.slice(0, 24), small)];
    const eps = [tf.tensor4d(a.eps, shape), tf.tensor4d(b.eps.slice(0, 24), small)];
    const gamma = [tf.tensor1d(a.gamma), tf.tensor1d(b.gamma)];
    const levels = noiseLevels(x0, eps, gamma);
    const expected = [noisyImage(x0[0], eps[0], gamma[0]), noisyImage(x0[1], eps[1], gamma[1])];
    tf.dispose([...x0, ...eps, ...gamma]); // the result must stay valid
    expect(levels.xt.map((t) => t.shape)).toEqual([shape, small]);
    expect(Array.from(levels.xt[0].dataSync())).toEqual(Array.from(expected[0].dataSync()));
    expect(Array.from(levels.xt[1].dataSync())).toEqual(Array.from(expected[1].dataSync()));
    expect(Array.from(levels.gamma[1].dataSync())).toEqual(Array.from(b.gamma));
    tf.dispose([levels, expected]);
  });

  it('noiseLevels rejects mismatched levels, noises or γ', () => {
    const x = tf.zeros([2, 2, 2, 3]) as tf.Tensor4D;
    const e = tf.zeros([2, 4, 4, 3]) as tf.Tensor4D;
    const g = tf.zeros([3]) as tf.Tensor1D;
    const g2 = tf.zeros([2]) as tf.Tensor1D;
    expect(() => noiseLevels([x], [x, x], [g2])).toThrow(/one of each per level/);
    expect(() => noiseLevels([x], [e], [g2])).toThrow(/level 0: noise/);
    expect(() => noiseLevels([x], [x], [g])).toThrow(/3 γ values for 2 samples/);
    tf.dispose([x, e, g, g2]);
  });

  it('leaks no tensors', () => {
    const { x0, eps, gamma } = batch(4);
    const inputs = [tf.tensor4d(x0, shape), tf.tensor4d(eps, shape), tf.tensor1d(gamma)] as const;
    expect(
      leakedBy(() => {
        tf.dispose([noisyImage(inputs[0], inputs[1], inputs[2]), velocity(inputs[0], inputs[1], inputs[2])]);
        tf.dispose(noiseLevels([inputs[0]], [inputs[1]], [inputs[2]]));
      }),
    ).toBe(0);
    tf.dispose([...inputs]);
  });
});
