import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng, initBackend } from '@matryoshka-ts/core';
import { shiftSchedule, squaredCosineSchedule } from '@matryoshka-ts/schedules';
import { noisyImage } from './forward-process.js';
import { levelGammaTables } from './level-tables.js';
import { lowResolutionTargets } from './low-resolution.js';
import { drawTrainingExample } from './training-example.js';
import { leakedBy, rngFor, uniformF32 } from './test-helpers.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const base = squaredCosineSchedule(1000);
const tables = levelGammaTables(base, [4, 2, 1]);
const resolutions = [16, 8, 4];

function images(batch: number): tf.Tensor4D {
  return tf.tensor4d(uniformF32(rngFor(99), batch * 16 * 16 * 3), [batch, 16, 16, 3]);
}

describe('level tables', () => {
  it('shift each level by its scale (float32, as the official code), the innermost not at all', () => {
    expect(Array.from(tables[0])).toEqual(Array.from(shiftSchedule(base, 4).gammasF32));
    expect(Array.from(tables[1])).toEqual(Array.from(shiftSchedule(base, 2).gammasF32));
    expect(Array.from(tables[2])).toEqual(Array.from(base.gammasF32));
    const squared = levelGammaTables(base, [2, 1], 2);
    expect(Array.from(squared[0])).toEqual(Array.from(shiftSchedule(base, 4).gammasF32));
    const unshifted = levelGammaTables(base, [2, 1], 1, false);
    expect(Array.from(unshifted[0])).toEqual(Array.from(base.gammasF32));
  });
});

describe('drawing a training example', () => {
  it('draws times, then each level’s noise, from the Rng; γ_N = tables[N][t + 1]; x_t from the pooled x0', () => {
    const x = images(3);
    const example = drawTrainingExample(x, { tables, resolutions }, new Rng(7));
    // Replay the documented draw order with a fresh generator.
    const replay = new Rng(7);
    const times = [0, 1, 2].map(() => replay.int(1000));
    expect(example.times).toEqual(times);
    const x0 = lowResolutionTargets(x, resolutions);
    example.eps.forEach((eps, n) => {
      expect(eps.shape).toEqual([3, resolutions[n], resolutions[n], 3]);
      expect(Array.from(eps.dataSync())).toEqual(Array.from(replay.normals(eps.size)));
      expect(Array.from(example.gamma[n].dataSync())).toEqual(times.map((t) => tables[n][t + 1]));
      expect(Array.from(example.x0[n].dataSync())).toEqual(Array.from(x0[n].dataSync()));
      const xt = noisyImage(x0[n], eps, example.gamma[n]);
      expect(Array.from(example.xt[n].dataSync())).toEqual(Array.from(xt.dataSync()));
      xt.dispose();
    });
    tf.dispose([x, x0, example]);
  });

  it('is reproducible from the seed, and independent across levels (the low-resolution noise is not pooled)', () => {
    const x = images(2);
    const a = drawTrainingExample(x, { tables, resolutions }, new Rng(3));
    const b = drawTrainingExample(x, { tables, resolutions }, new Rng(3));
    const c = drawTrainingExample(x, { tables, resolutions }, new Rng(4));
    expect(b.times).toEqual(a.times);
    expect(Array.from(b.eps[1].dataSync())).toEqual(Array.from(a.eps[1].dataSync()));
    expect(Array.from(c.eps[0].dataSync())).not.toEqual(Array.from(a.eps[0].dataSync()));
    // Pooled N(0,1) noise would have variance 1/4 per level down; fresh noise keeps variance 1.
    const variance = (t: tf.Tensor) => tf.tidy(() => tf.moments(t).variance.dataSync()[0]);
    for (const eps of a.eps) expect(variance(eps)).toBeGreaterThan(0.6);
    tf.dispose([x, a, b, c]);
  });

  it('t is uniform on {0 … 999} (2000 draws) and noise is N(0, 1)', () => {
    const x = tf.zeros([2000, 4, 4, 3]) as tf.Tensor4D;
    const example = drawTrainingExample(x, { tables: tables.slice(1), resolutions: [4, 2] }, new Rng(11));
    const t = example.times;
    expect(Math.min(...t)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...t)).toBeLessThanOrEqual(999);
    expect(t.every(Number.isInteger)).toBe(true);
    // Mean of 2000 uniform draws on 0…999: standard error 289/√2000 ≈ 6.5; allow 5 of them.
    expect(Math.abs(t.reduce((s, v) => s + v, 0) / t.length - 499.5)).toBeLessThan(33);
    expect(new Set(t).size).toBeGreaterThan(800); // covers the range, not a few values
    const { mean, variance } = tf.moments(example.eps[0]);
    // 96 000 normals: standard errors 0.003 (mean) and 0.005 (variance).
    expect(Math.abs(mean.dataSync()[0])).toBeLessThan(0.02);
    expect(Math.abs(variance.dataSync()[0] - 1)).toBeLessThan(0.03);
    tf.dispose([x, example, mean, variance]);
  });

  it('rejects tables that do not fit', () => {
    const x = images(1);
    const rng = new Rng(1);
    expect(() => drawTrainingExample(x, { tables: tables.slice(1), resolutions }, rng)).toThrow(/2 tables for 3 levels/);
    expect(() => drawTrainingExample(x, { tables: [tables[0], tables[1].slice(1), tables[2]], resolutions }, rng)).toThrow(/level 1: table has 1000 entries/);
    expect(() => drawTrainingExample(x, { tables: [tables[0].slice(1), tables[1].slice(1), tables[2].slice(1)], resolutions }, rng)).toThrow(/must start with ᾱ = 1/);
    x.dispose();
  });

  it('leaks no tensors', () => {
    const x = images(2);
    expect(leakedBy(() => tf.dispose(drawTrainingExample(x, { tables, resolutions, downsample: 'bilinear' }, new Rng(1))))).toBe(0);
    expect(leakedBy(() => expect(() => drawTrainingExample(x, { tables, resolutions: [16, 8, 3] }, new Rng(1))).toThrow())).toBe(0);
    x.dispose();
  });
});
