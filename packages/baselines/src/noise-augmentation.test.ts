import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { Rng } from '@matryoshka-ts/core';
import { scheduleByName } from '@matryoshka-ts/schedules';
import { augmentForSampling, augmentForTraining, checkAugmentationLevel } from './noise-augmentation.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const schedule = scheduleByName('cosine', 1000);

/** Independent reference: 2×2 average pooling of [1, 4, 4, 1] data, done by hand. */
function avgPool2(data: Float32Array, b: number, r: number, c: number): number[] {
  const h = r / 2;
  const out: number[] = [];
  for (let n = 0; n < b; n++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < h; j++)
        for (let k = 0; k < c; k++) {
          let s = 0;
          for (const [di, dj] of [
            [0, 0],
            [0, 1],
            [1, 0],
            [1, 1],
          ])
            s += data[((n * r + 2 * i + di) * r + 2 * j + dj) * c + k];
          out.push(s / 4);
        }
  return out;
}

describe('noise-conditioning augmentation', () => {
  it('training: a uniform step per sample, then z = √γ·x_low + √(1−γ)·ε with γ from the float32 table at t + 1', () => {
    const rng = new Rng(7);
    const x = rng.normalTensor([3, 4, 4, 2]) as tf.Tensor4D;
    const xData = x.dataSync() as Float32Array;
    const { lowRes, augTimes } = augmentForTraining(x, 2, schedule, new Rng(11));
    expect(lowRes.shape).toEqual([3, 2, 2, 2]);
    // The same draws, replayed: B step indices, then the noise in NHWC order.
    const replay = new Rng(11);
    const times = [0, 1, 2].map(() => replay.int(1000));
    expect(augTimes).toEqual(times);
    const eps = replay.normalTensor([3, 2, 2, 2]).dataSync();
    const low = avgPool2(xData, 3, 4, 2);
    const z = lowRes.dataSync();
    const per = 2 * 2 * 2;
    for (let i = 0; i < z.length; i++) {
      const g = schedule.gammasF32[times[Math.floor(i / per)] + 1];
      // float32 products and a sum of two terms: a few ulps of values of order 1.
      expect(z[i]).toBeCloseTo(Math.sqrt(g) * low[i] + Math.sqrt(1 - g) * eps[i], 5);
    }
    expect(x.isDisposed).toBe(false);
    tf.dispose([x, lowRes]);
  });

  it('sampling: one fixed level L per sample (network index L − 1); level 1 keeps the image, 1000 is noise', () => {
    const x = tf.fill([2, 4, 4, 3], 0.5) as tf.Tensor4D;
    const light = augmentForSampling(x, 1, schedule, new Rng(3));
    expect(light.augTimes).toEqual([0, 0]);
    // ᾱ at table entry 1 of the cosine schedule: σ = √(1−ᾱ) ≈ 0.0078, so the image barely moves…
    const g1 = schedule.gammasF32[1];
    expect(Math.sqrt(1 - g1)).toBeLessThan(0.01);
    // …and moves exactly by the closed form with the replayed noise (float32 rounding).
    const e1 = new Rng(3).normalTensor([2, 4, 4, 3]);
    const want = tf.add(tf.mul(Math.sqrt(g1), x), tf.mul(Math.sqrt(1 - g1), e1));
    expect(tf.max(tf.abs(tf.sub(light.lowRes, want))).dataSync()[0]).toBeLessThan(1e-6);
    const full = augmentForSampling(x, 1000, schedule, new Rng(3));
    expect(full.augTimes).toEqual([999, 999]);
    // ᾱ at the last entry is ~0 (β ≤ 0.999): z is the noise itself, independent of the image.
    const eps = new Rng(3).normalTensor([2, 4, 4, 3]);
    expect(tf.max(tf.abs(tf.sub(full.lowRes, eps))).dataSync()[0]).toBeLessThan(1e-3);
    expect(x.isDisposed).toBe(false);
    tf.dispose([x, light.lowRes, full.lowRes, eps, e1, want]);
  });

  it('refuses an augmentation level outside 1…steps', () => {
    expect(() => checkAugmentationLevel(0, 1000)).toThrow(/1…1000/);
    expect(() => checkAugmentationLevel(1001, 1000)).toThrow(/1…1000/);
    expect(() => checkAugmentationLevel(2.5, 1000)).toThrow(/integer/);
    const x = tf.zeros([1, 4, 4, 3]) as tf.Tensor4D;
    expect(() => augmentForSampling(x, 0, schedule, new Rng(1))).toThrow(RangeError);
    x.dispose();
  });

  it('leaks no tensors', () => {
    const x = tf.ones([2, 8, 8, 3]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.dispose(augmentForTraining(x, 4, schedule, new Rng(i)).lowRes);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });
});
