import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import {
  type Denoiser,
  classifierFreeGuidance,
  combineGuidance,
  networkDenoiser,
  officialNetworkTime,
} from './denoiser.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const rng = new Rng(3);
const shape: [number, number, number, number] = [2, 2, 2, 3];
const uncondData = rng.normals(24);
const condData = rng.normals(24);

describe('combineGuidance: pred_uncond + w·(pred_cond − pred_uncond)', () => {
  it('w = 0 gives the unconditional prediction exactly, w = 1 the conditional one (to float32 rounding)', () => {
    tf.tidy(() => {
      const [u, c] = [tf.tensor4d(uncondData, shape), tf.tensor4d(condData, shape)];
      expect(Array.from(combineGuidance(u, c, 0).dataSync())).toEqual(Array.from(uncondData));
      const one = combineGuidance(u, c, 1).dataSync();
      // u + (c − u) rounds twice: within one ulp of |c| + one of |c − u| (values ≲ 4 → ≤ 1e-6).
      condData.forEach((v, i) => expect(Math.abs(one[i] - v)).toBeLessThanOrEqual(1e-6));
    });
  });

  it('w = 3 matches the float64 formula', () => {
    tf.tidy(() => {
      const got = combineGuidance(tf.tensor4d(uncondData, shape), tf.tensor4d(condData, shape), 3).dataSync();
      // Three float32 roundings of values ≲ 20.
      uncondData.forEach((u, i) => expect(Math.abs(got[i] - (u + 3 * (condData[i] - u)))).toBeLessThanOrEqual(4e-6));
    });
  });
});

describe('classifierFreeGuidance', () => {
  // Two levels; the fake network checks that it gets [x; x] and answers uncond = x + 1,
  // cond = 2·x at every level, so the guided output is (x + 1) + w·(x − 1).
  let levels: tf.Tensor4D[];
  beforeAll(() => {
    levels = [tf.tensor4d(uncondData, shape), tf.tensor4d(condData.slice(0, 6), [2, 1, 1, 3])];
  });
  const seen: Array<{ t: number; batches: number[] }> = [];
  const doubled: Denoiser = (x, t) => {
    seen.push({ t, batches: x.map((l) => l.shape[0]) });
    return x.map((level, n) => {
      const [first, second] = tf.split(level, 2, 0);
      expect(Array.from(first.dataSync()), `level ${n}: [x; x]`).toEqual(Array.from(levels[n].dataSync()));
      expect(Array.from(second.dataSync())).toEqual(Array.from(levels[n].dataSync()));
      return tf.concat([tf.add(first, 1), tf.mul(second, 2)], 0) as tf.Tensor4D;
    });
  };

  it('runs the network once on the doubled batch and guides every level', () => {
    seen.length = 0;
    const start = tf.memory().numTensors;
    const out = classifierFreeGuidance(doubled, 3)(levels, 667);
    expect(seen).toEqual([{ t: 667, batches: [4, 4] }]);
    out.forEach((o, n) => {
      expect(o.shape).toEqual(levels[n].shape);
      const x = levels[n].dataSync();
      const got = o.dataSync();
      x.forEach((v, i) => expect(got[i]).toBeCloseTo(v + 1 + 3 * (v - 1), 5));
    });
    tf.dispose(out);
    expect(tf.memory().numTensors, 'only the outputs are left').toBe(start);
  });

  it('w = 0 and w = 1 select the unconditional and conditional halves', () => {
    const [u] = classifierFreeGuidance(doubled, 0)(levels, 10);
    const [c] = classifierFreeGuidance(doubled, 1)(levels, 10);
    const x = levels[0].dataSync();
    x.forEach((v, i) => {
      expect(u.dataSync()[i]).toBe(Math.fround(v + 1));
      expect(Math.abs(c.dataSync()[i] - 2 * v)).toBeLessThanOrEqual(1e-6);
    });
    tf.dispose([u, c]);
  });

  it('rejects a network that does not return the doubled batch', () => {
    const wrong: Denoiser = (x) => x.map((l) => tf.slice(l, 0, l.shape[0] / 2) as tf.Tensor4D);
    expect(() => classifierFreeGuidance(wrong, 2)(levels, 5)).toThrow(/expected 2·2/);
  });
});

describe('networkDenoiser', () => {
  it('passes t − 1 (the official discrete convention) to every sample of the innermost batch', () => {
    const calls: number[][] = [];
    const denoiser = networkDenoiser((x, times) => {
      calls.push(times);
      return x.map((l) => tf.clone(l));
    });
    const x = [tf.zeros([3, 4, 4, 3]) as tf.Tensor4D, tf.zeros([3, 2, 2, 3]) as tf.Tensor4D];
    tf.dispose(denoiser(x, 834));
    tf.dispose(denoiser(x, 1));
    expect(calls).toEqual([
      [833, 833, 833],
      [0, 0, 0],
    ]);
    expect(officialNetworkTime(600)).toBe(599);
    tf.dispose(x);
  });

  it('uses a custom grid-to-network time map', () => {
    const calls: number[][] = [];
    const denoiser = networkDenoiser(
      (x, times) => {
        calls.push(times);
        return x.map((l) => tf.clone(l));
      },
      { networkTime: (t) => t / 1000 },
    );
    const x = [tf.zeros([2, 2, 2, 3]) as tf.Tensor4D];
    tf.dispose(denoiser(x, 250));
    expect(calls).toEqual([[0.25, 0.25]]);
    tf.dispose(x);
  });
});
