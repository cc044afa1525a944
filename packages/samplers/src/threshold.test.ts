import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import {
  DYNAMIC_DEEPFLOYD,
  DYNAMIC_IMAGEN,
  applyThreshold,
  dynamicThreshold,
  quantilePerSample,
  thresholdByName,
} from './threshold.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

/** numpy.quantile(values, q) (method 'linear'), in float64: index q·(n−1), numpy's two-sided lerp. */
function numpyQuantile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values).sort();
  const index = q * (sorted.length - 1);
  const lo = Math.floor(index);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const w = index - lo;
  const [a, b] = [sorted[lo], sorted[hi]];
  return w < 0.5 ? a + (b - a) * w : b - (b - a) * (1 - w);
}

/** Dynamic thresholding of one sample's values in float64. */
function dynamicReference(values: ArrayLike<number>, quantile: number, max: number): number[] {
  const s = Math.min(Math.max(numpyQuantile(Array.from(values, Math.abs), quantile), 1), max);
  return Array.from(values, (v) => Math.min(Math.max(v, -s), s) / s);
}

function rows(x: tf.Tensor): Float32Array[] {
  const data = x.dataSync() as Float32Array;
  const n = x.size / x.shape[0];
  return Array.from({ length: x.shape[0] }, (_, b) => data.slice(b * n, (b + 1) * n));
}

// The order statistics are selected exactly, so the only error is the float32 lerp: at most
// about one float32 ulp (2^-23 relative) of the larger of the two neighbours, plus the float32
// rounding of w. 2^-21 of the larger neighbour covers both.
const lerpTolerance = (ref: number[], i: number) => 2 ** -21 * Math.max(1, Math.abs(ref[i]));

describe('quantilePerSample (numpy linear method)', () => {
  it('matches hand-computed quantiles: interpolation, exact indices, ties, one value', () => {
    const cases: Array<[number[], number, number]> = [
      [[1, 2, 3, 4], 0.5, 2.5], // index 1.5
      [[3, 1, 2], 0.25, 1.5], // sorted 1 2 3, index 0.5
      [[4, 1, 3, 2], 1 / 3, 2], // index 1 exactly
      [[5, 5, 5, 1], 0.5, 5], // ties: sorted 1 5 5 5, index 1.5 between two 5s
      [[2, 2, 9, 2, 2], 0.9, 6.2], // index 3.6: 2 + 0.6·7
      [[7, 3], 0, 3],
      [[7, 3], 1, 7],
      [[-4], 0.995, -4],
    ];
    for (const [values, q, want] of cases) {
      const got = tf.tidy(() => quantilePerSample(tf.tensor2d([values]), q).dataSync()[0]);
      expect(got, `${values} q=${q}`).toBeCloseTo(want, 6);
      expect(numpyQuantile(values, q), 'the reference itself').toBeCloseTo(want, 12);
    }
  });

  it(
    'equals a float64 reference per sample for random data, ' + 'with repeated values, at the thresholds’ quantiles',
    () => {
      const rng = new Rng(11);
      // 3 samples of 2×5×3: normal values; values rounded to 1 decimal (many ties); a constant sample.
      const n = 30;
      const data = new Float32Array(3 * n);
      for (let i = 0; i < n; i++) {
        data[i] = rng.normal() * 2;
        data[n + i] = Math.round(rng.normal() * 10) / 10;
        data[2 * n + i] = 0.25;
      }
      const x = tf.tensor4d(data, [3, 2, 5, 3]);
      for (const q of [0, 0.1, 0.5, 0.95, 0.995, 1]) {
        const got = tf.tidy(() => Array.from(quantilePerSample(x, q).dataSync()));
        const ref = rows(x).map((r) => numpyQuantile(r, q));
        got.forEach((g, b) =>
          expect(Math.abs(g - ref[b]), `q=${q} sample ${b}`).toBeLessThanOrEqual(lerpTolerance(ref, b)),
        );
      }
      x.dispose();
    },
  );

  it('rejects q outside [0, 1]', () => {
    expect(() => quantilePerSample(tf.zeros([1, 4]), 1.5)).toThrow(/quantile/);
  });
});

describe('thresholds', () => {
  const rng = new Rng(5);
  // Sample 0 lies inside [−1, 1] (so dynamic = clip); sample 1 is wide (|x| up to ~6).
  const data = new Float32Array(2 * 4 * 4 * 3);
  for (let i = 0; i < 48; i++) data[i] = 0.3 * rng.normal();
  for (let i = 48; i < 96; i++) data[i] = 2 * rng.normal();

  it('none leaves x̂0 unchanged; clip clamps to [−1, 1]', () => {
    tf.tidy(() => {
      const x = tf.tensor4d(data, [2, 4, 4, 3]);
      expect(Array.from(applyThreshold(x, 'none').dataSync())).toEqual(Array.from(data));
      expect(Array.from(applyThreshold(x, 'clip').dataSync())).toEqual(
        Array.from(data, (v) => Math.fround(Math.min(Math.max(v, -1), 1))),
      );
    });
  });

  for (const [name, preset] of [
    ['Imagen (0.995, max 100)', DYNAMIC_IMAGEN],
    ['DeepFloyd (0.95, max 1.5)', DYNAMIC_DEEPFLOYD],
    ['a low quantile (0.5, max 100)', { quantile: 0.5, max: 100 }],
  ] as const) {
    it(`dynamic ${name} equals the float64 reference per sample`, () => {
      tf.tidy(() => {
        const x = tf.tensor4d(data, [2, 4, 4, 3]);
        const got = rows(dynamicThreshold(x, preset));
        rows(x).forEach((r, b) => {
          const ref = dynamicReference(r, preset.quantile, preset.max);
          // float32: the scale s carries the lerp error (~2^-21 relative), then one clamp and one
          // division (one more ulp); values are ≤ 1 after the division.
          got[b].forEach((g, i) => expect(Math.abs(g - ref[i]), `sample ${b} value ${i}`).toBeLessThanOrEqual(4e-7));
        });
      });
    });
  }

  it('dynamic: s = 1 (clip) where the quantile is below 1, the cap 1.5 binds for DeepFloyd on wide samples', () => {
    tf.tidy(() => {
      const x = tf.tensor4d(data, [2, 4, 4, 3]);
      const [inside, wide] = rows(dynamicThreshold(x, DYNAMIC_DEEPFLOYD));
      const clipped = rows(applyThreshold(x, 'clip'));
      expect(Array.from(inside)).toEqual(Array.from(clipped[0]));
      // The 95th percentile of |x| for N(0, 4) data is ≈ 4 > 1.5: everything is clamped to ±1.5 then divided by 1.5.
      expect(numpyQuantile(Array.from(rows(x)[1], Math.abs), 0.95)).toBeGreaterThan(1.5);
      wide.forEach((v, i) => expect(v).toBeCloseTo(Math.min(Math.max(data[48 + i], -1.5), 1.5) / 1.5, 6));
    });
  });

  it('dynamic: clamp(x̂0/s, −1, 1) equals clamp(x̂0, −s, s)/s bit for bit, at and beyond ±s', () => {
    tf.tidy(() => {
      const rng = new Rng(5);
      const values = rng.normals(4 * 8 * 8 * 3).map((v) => v * 3);
      const x = tf.tensor4d(values, [4, 8, 8, 3]);
      const q = quantilePerSample(tf.abs(x), DYNAMIC_IMAGEN.quantile);
      const s = tf.reshape(tf.clipByValue(q, 1, DYNAMIC_IMAGEN.max), [4, 1, 1, 1]);
      const sv = s.dataSync();
      // Put values at ±s of the unmodified data into each sample too (near the threshold).
      const withEdges = tf.tensor4d(
        values.map((v, i) => (i % 97 === 0 ? Math.sign(v) * sv[Math.floor(i / 192)] : v)),
        [4, 8, 8, 3],
      );
      const s2 = tf.reshape(
        tf.clipByValue(quantilePerSample(tf.abs(withEdges), DYNAMIC_IMAGEN.quantile), 1, DYNAMIC_IMAGEN.max),
        [4, 1, 1, 1],
      );
      const formula = tf.div(tf.minimum(tf.maximum(withEdges, tf.neg(s2)), s2), s2);
      expect(formula.dataSync().some((v) => Math.abs(v) === 1)).toBe(true); // some values were clamped
      expect(Array.from(dynamicThreshold(withEdges, DYNAMIC_IMAGEN).dataSync())).toEqual(
        Array.from(formula.dataSync()),
      );
    });
  });

  it('thresholdByName maps the official names', () => {
    expect(thresholdByName('none')).toBe('none');
    expect(thresholdByName('CLIP')).toBe('clip');
    expect(thresholdByName('dynamic')).toEqual({ quantile: 0.995, max: 100 });
    expect(thresholdByName('dynamic_if')).toEqual({ quantile: 0.95, max: 1.5 });
    expect(() => thresholdByName('soft')).toThrow(/Unknown threshold/);
  });

  it('creates no lasting tensors', () => {
    const x = tf.tensor4d(data, [2, 4, 4, 3]);
    const start = tf.memory().numTensors;
    for (const thr of ['none', 'clip', DYNAMIC_IMAGEN, DYNAMIC_DEEPFLOYD] as const) applyThreshold(x, thr).dispose();
    quantilePerSample(x, 0.3).dispose();
    expect(tf.memory().numTensors).toBe(start);
    x.dispose();
  });
});
