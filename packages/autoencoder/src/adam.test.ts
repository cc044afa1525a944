import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { Adam } from './adam.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const options = { beta1: 0.5, beta2: 0.9, eps: 1e-8 };

/** torch.optim.Adam's update in float64, for one parameter vector. */
function torchAdam(p: number[], grads: number[][], lr: number): number[] {
  const { beta1, beta2, eps } = options;
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const out = [...p];
  grads.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < p.length; i++) {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] ** 2;
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - beta2 ** t) + eps;
      out[i] -= (lr / (1 - beta1 ** t)) * (m[i] / denom);
    }
  });
  return out;
}

describe('Adam', () => {
  it('follows torch.optim.Adam (bias corrections, ε outside the root)', () => {
    const p0 = [0.5, -1, 2];
    const grads = [
      [0.1, -0.2, 3],
      [-0.3, 0.05, 1],
      [0, 0.4, -2],
    ];
    const params = new Map([['w', tf.variable(tf.tensor1d(p0))]]);
    const adam = new Adam(options);
    for (const g of grads) {
      const t = tf.tensor1d(g);
      adam.update(params, new Map([['w', t]]), 0.01);
      t.dispose();
    }
    const want = torchAdam(p0, grads, 0.01);
    const got = params.get('w')!.dataSync();
    // float32 of O(1) parameters moved by O(0.01): 1e-6 absolute.
    for (let i = 0; i < 3; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-6);
    expect(adam.step).toBe(3);
    adam.dispose();
    params.get('w')!.dispose();
  });

  it('a zero-gradient step only counts before the first update, and decays the moments after', () => {
    const params = new Map([['w', tf.variable(tf.tensor1d([1, 2]))]]);
    const adam = new Adam(options);
    const count = tf.memory().numTensors;
    adam.zeroGradientStep(params, 0.1);
    expect(adam.step).toBe(1);
    expect(Array.from(params.get('w')!.dataSync())).toEqual([1, 2]);
    expect(tf.memory().numTensors).toBe(count);
    // As torch: the first real update is then at t = 2 (its bias corrections), zero steps after it move p.
    const g = tf.tensor1d([1, -1]);
    adam.update(params, new Map([['w', g]]), 0.1);
    const want = torchAdam(
      [1, 2],
      [
        [0, 0],
        [1, -1],
        [0, 0],
      ],
      0.1,
    );
    adam.zeroGradientStep(params, 0.1);
    const got = params.get('w')!.dataSync();
    for (let i = 0; i < 2; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-6);
    g.dispose();
    adam.dispose();
    params.get('w')!.dispose();
  });

  it('state() and load() round-trip; load rejects state that does not fit', () => {
    const params = new Map([['w', tf.variable(tf.tensor2d([[1, 2, 3]]))]]);
    const adam = new Adam(options);
    const g = tf.tensor2d([[0.5, -0.5, 1]]);
    adam.update(params, new Map([['w', g]]), 0.1);
    const state = adam.state();
    const other = new Adam(options);
    other.load(state, params);
    expect(other.state()).toEqual(state);
    expect(other.m.get('w')!.shape).toEqual([1, 3]);
    expect(() => other.load({ ...state, m: new Map([['x', new Float32Array(3)]]) }, params)).toThrow(/not among/);
    expect(() => other.load({ ...state, v: new Map([['w', new Float32Array(2)]]) }, params)).toThrow(/2 values/);
    expect(() => other.load({ ...state, step: -1 }, params)).toThrow(/step/);
    // A rejected state leaves the loaded one in place.
    expect(other.state()).toEqual(state);
    g.dispose();
    adam.dispose();
    other.dispose();
    params.get('w')!.dispose();
  });
});
