import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { firstSamples, mixedFractions, parseMixedRatio, samplesPerLevel } from './mixed-resolution.js';
import { leakedBy, rngFor } from './test-helpers.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

describe('mixed-resolution batches', () => {
  it('2:1 with B = 3: m = [2/3, 1], levels see [2, 3] samples', () => {
    expect(mixedFractions('2:1')).toEqual([2 / 3, 1]);
    expect(samplesPerLevel('2:1', 3)).toEqual([2, 3]);
    expect(samplesPerLevel([2, 1], 4)).toEqual([2, 4]); // ⌊8/3⌋
  });

  it('1:1:1 with B = 6: m = [1/3, 2/3, 1], levels see [2, 4, 6] samples', () => {
    expect(mixedFractions([1, 1, 1])).toEqual([1 / 3, 2 / 3, 1]);
    expect(samplesPerLevel('1:1:1', 6)).toEqual([2, 4, 6]);
    expect(samplesPerLevel('16:4:1', 21)).toEqual([16, 20, 21]);
  });

  it('counts are ⌊(a+…)·B/sum⌋ exactly, non-decreasing, the last level sees all (random integer ratios)', () => {
    const rng = rngFor(5);
    for (let trial = 0; trial < 200; trial++) {
      const parts = Array.from({ length: 1 + rng.int(4) }, () => 1 + rng.int(20));
      const batch = rng.int(65);
      const counts = samplesPerLevel(parts, batch);
      const sum = parts.reduce((s, p) => s + p, 0);
      let acc = 0;
      // Integer arithmetic: b_N·sum ≤ cum_N·B < (b_N + 1)·sum.
      parts.forEach((p, n) => {
        acc += p;
        expect(counts[n] * sum).toBeLessThanOrEqual(acc * batch);
        expect((counts[n] + 1) * sum).toBeGreaterThan(acc * batch);
        if (n > 0) expect(counts[n]).toBeGreaterThanOrEqual(counts[n - 1]);
      });
      expect(counts[counts.length - 1]).toBe(batch);
    }
  });

  it('parses ratios and rejects bad ones', () => {
    expect(parseMixedRatio(' 2 : 1 ')).toEqual([2, 1]);
    expect(parseMixedRatio('0.5:1.5')).toEqual([0.5, 1.5]);
    expect(() => parseMixedRatio('2:x')).toThrow(/non-negative numbers/);
    expect(() => parseMixedRatio('2::1')).toThrow(/non-negative numbers/);
    expect(() => parseMixedRatio('')).toThrow(/non-negative numbers/);
    expect(() => parseMixedRatio([1, -1])).toThrow(/non-negative numbers/);
    expect(() => parseMixedRatio([0, 0])).toThrow(/not all zero/);
    expect(() => samplesPerLevel('2:1', 2.5)).toThrow(/batch must be a non-negative integer/);
  });

  it('firstSamples takes each level’s first samples', () => {
    const a = tf.tensor2d([[1], [2], [3]]);
    const b = tf.tensor2d([[4], [5], [6]]);
    const [x, y] = firstSamples([a, b], [2, 3]);
    expect(x.arraySync()).toEqual([[1], [2]]);
    expect(y.arraySync()).toEqual([[4], [5], [6]]);
    expect(() => firstSamples([a, b], [4, 3])).toThrow(/level 0: cannot take 4 of 3/);
    expect(() => firstSamples([a], [1, 2])).toThrow(/2 counts for 1 levels/);
    expect(leakedBy(() => tf.dispose(firstSamples([a, b], [1, 3])))).toBe(0);
    expect(leakedBy(() => expect(() => firstSamples([a, b], [1, 4])).toThrow())).toBe(0);
    tf.dispose([a, b, x, y]);
  });
});
