import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { levelSchedules, makeSchedule, squaredCosineSchedule } from '@matryoshka-ts/schedules';
import { noisyImage } from './forward-process.js';
import { lowResolutionTargets } from './low-resolution.js';
import { drawTrainingExample, drawTrainingExampleInParts } from './training-example.js';
import { leakedBy, rngFor, uniformF32 } from './test-helpers.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const base = squaredCosineSchedule(1000);
const schedules = levelSchedules(base, [4, 2, 1]);
const tables = schedules.map((s) => s.gammasF32);
/** A schedule holding exactly `table` (to test tables that do not fit). */
const scheduleOf = (table: Float32Array) => makeSchedule('test', Float64Array.from(table), () => 0.5, table);
const resolutions = [16, 8, 4];

function images(batch: number): tf.Tensor4D {
  return tf.tensor4d(uniformF32(rngFor(99), batch * 16 * 16 * 3), [batch, 16, 16, 3]);
}

describe('drawing a training example', () => {
  it('draws times, then each level’s noise, from the Rng; γ_N = tables[N][t + 1]; x_t from the pooled x0', () => {
    const x = images(3);
    const example = drawTrainingExample(x, { schedules, resolutions }, new Rng(7));
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
    const a = drawTrainingExample(x, { schedules, resolutions }, new Rng(3));
    const b = drawTrainingExample(x, { schedules, resolutions }, new Rng(3));
    const c = drawTrainingExample(x, { schedules, resolutions }, new Rng(4));
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
    const example = drawTrainingExample(x, { schedules: schedules.slice(1), resolutions: [4, 2] }, new Rng(11));
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
    expect(() => drawTrainingExample(x, { schedules: schedules.slice(1), resolutions }, rng)).toThrow(
      /2 schedules for 3 levels/,
    );
    expect(() =>
      drawTrainingExample(
        x,
        { schedules: [tables[0], tables[1].slice(1), tables[2]].map(scheduleOf), resolutions },
        rng,
      ),
    ).toThrow(/level 1: table has 1000 entries/);
    expect(() =>
      drawTrainingExample(x, { schedules: tables.map((t) => scheduleOf(t.slice(1))), resolutions }, rng),
    ).toThrow(/must start with ᾱ = 1/);
    x.dispose();
  });

  it('leaks no tensors', () => {
    const x = images(2);
    expect(
      leakedBy(() =>
        tf.dispose(drawTrainingExample(x, { schedules, resolutions, downsample: 'bilinear' }, new Rng(1))),
      ),
    ).toBe(0);
    expect(
      leakedBy(() =>
        expect(() => drawTrainingExample(x, { schedules, resolutions: [16, 8, 3] }, new Rng(1))).toThrow(),
      ),
    ).toBe(0);
    x.dispose();
  });
});

describe('drawing a training example in parts (data-parallel ranks)', () => {
  it('part p of the batch is what drawTrainingExample draws from generator p on its rows', () => {
    const x = images(4);
    const before = tf.memory().numTensors;
    const whole = drawTrainingExampleInParts(x, { schedules, resolutions }, [new Rng(1), new Rng(2)]);
    for (const [p, seed] of [
      [0, 1],
      [1, 2],
    ]) {
      const rows = tf.slice(x, [2 * p], [2]);
      const part = drawTrainingExample(rows, { schedules, resolutions }, new Rng(seed));
      expect(whole.times.slice(2 * p, 2 * p + 2)).toEqual(part.times);
      for (const field of ['x0', 'eps', 'gamma', 'xt'] as const)
        part[field].forEach((t, n) => {
          const mine = tf.slice(whole[field][n], [2 * p], [2]);
          expect(Array.from(mine.dataSync())).toEqual(Array.from(t.dataSync()));
          mine.dispose();
        });
      tf.dispose([rows, part]);
    }
    tf.dispose(whole);
    expect(tf.memory().numTensors).toBe(before);
    expect(() =>
      drawTrainingExampleInParts(
        x,
        { schedules, resolutions },
        [1, 2, 3].map((s) => new Rng(s)),
      ),
    ).toThrow(/does not split into 3 equal parts/);
    x.dispose();
  });
});
