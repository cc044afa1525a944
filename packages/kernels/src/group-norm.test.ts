import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { groupNormAct } from './group-norm.js';
import { maxAbsDiff, randomF32, seeded } from './test-helpers.js';

// The tfjs-op path of groupNormAct (every backend without the fused kernel) against a direct
// float64 evaluation of y = silu((GN(x)·γ + β)·(1 + s) + t).
function direct(
  x: Float32Array,
  shape: number[],
  gamma: Float32Array,
  beta: Float32Array,
  groups: number,
  silu: boolean,
  s?: Float32Array,
  t?: Float32Array,
): Float64Array {
  const [B, H, W, C] = shape;
  const cg = C / groups,
    P = H * W;
  const y = new Float64Array(x.length);
  for (let b = 0; b < B; b++)
    for (let g = 0; g < groups; g++) {
      let mean = 0,
        sq = 0;
      for (let p = 0; p < P; p++) for (let k = 0; k < cg; k++) mean += x[(b * P + p) * C + g * cg + k];
      mean /= P * cg;
      for (let p = 0; p < P; p++) for (let k = 0; k < cg; k++) sq += (x[(b * P + p) * C + g * cg + k] - mean) ** 2;
      const rstd = 1 / Math.sqrt(sq / (P * cg) + 1e-5);
      for (let p = 0; p < P; p++)
        for (let k = 0; k < cg; k++) {
          const c = g * cg + k,
            i = (b * P + p) * C + c;
          let z = (x[i] - mean) * rstd * gamma[c] + beta[c];
          if (s && t) z = z * (1 + s[b * C + c]) + t[b * C + c];
          y[i] = silu ? z / (1 + Math.exp(-z)) : z;
        }
    }
  return y;
}

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
});

describe('groupNormAct (tfjs ops)', () => {
  it.each([
    { groups: 2, silu: false, modulated: false },
    { groups: 1, silu: true, modulated: false },
    { groups: 4, silu: true, modulated: true },
  ])(
    'matches a float64 evaluation: $groups groups, silu $silu, modulated $modulated',
    ({ groups, silu, modulated }) => {
      const rand = seeded(groups * 10 + (silu ? 1 : 0) + (modulated ? 2 : 0));
      const shape = [2, 5, 3, 8];
      const x = randomF32(rand, 2 * 5 * 3 * 8).map((v) => 2 * v + 0.3);
      const gamma = randomF32(rand, 8),
        beta = randomF32(rand, 8),
        s = randomF32(rand, 16),
        t = randomF32(rand, 16);
      const y = tf.tidy(() =>
        groupNormAct(tf.tensor4d(x, shape as [number, number, number, number]), tf.tensor1d(gamma), tf.tensor1d(beta), {
          groups,
          silu,
          ...(modulated ? { scale: tf.tensor2d(s, [2, 8]), shift: tf.tensor2d(t, [2, 8]) } : {}),
        }).dataSync(),
      );
      // float32 statistics over 60 values: agreement to ~1e-6 of values of size ~3.
      expect(
        maxAbsDiff(
          y,
          direct(x, shape, gamma, beta, groups, silu, modulated ? s : undefined, modulated ? t : undefined),
        ),
      ).toBeLessThan(2e-5);
    },
  );

  it('rejects channels that do not split into the groups, and a scale without a shift', () => {
    const x = tf.zeros([1, 2, 2, 6]) as tf.Tensor4D;
    expect(() => groupNormAct(x, tf.ones([6]), tf.zeros([6]), { groups: 4 })).toThrow(
      /6 channels do not split into 4 groups/,
    );
    expect(() => groupNormAct(x, tf.ones([6]), tf.zeros([6]), { groups: 3, scale: tf.zeros([1, 6]) })).toThrow(
      /scale and shift come together/,
    );
    x.dispose();
  });
});
