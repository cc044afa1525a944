import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff, nchwToNhwc, nhwcToNchw } from './layout.js';
import { sizeOf } from './types.js';

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
});

describe('nchwToNhwc / nhwcToNchw', () => {
  const [B, C, H, W] = [2, 3, 4, 5];
  // Every element encodes its own NCHW coordinates, so placement errors are visible.
  const code = (b: number, c: number, h: number, w: number) => b * 1000 + c * 100 + h * 10 + w;
  const nchwData = new Float32Array(B * C * H * W);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let h = 0; h < H; h++)
        for (let w = 0; w < W; w++) nchwData[((b * C + c) * H + h) * W + w] = code(b, c, h, w);

  it('moves x[b, c, h, w] to y[b, h, w, c]', () => {
    tf.tidy(() => {
      const y = nchwToNhwc(tf.tensor4d(nchwData, [B, C, H, W]));
      expect(y.shape).toEqual([B, H, W, C]);
      const d = y.dataSync();
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++)
          for (let w = 0; w < W; w++)
            for (let c = 0; c < C; c++) expect(d[((b * H + h) * W + w) * C + c]).toBe(code(b, c, h, w));
    });
  });

  it('nhwcToNchw moves y[b, h, w, c] back to x[b, c, h, w]', () => {
    tf.tidy(() => {
      const nhwc = new Float32Array(B * H * W * C);
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++)
          for (let w = 0; w < W; w++)
            for (let c = 0; c < C; c++) nhwc[((b * H + h) * W + w) * C + c] = code(b, c, h, w);
      const x = nhwcToNchw(tf.tensor4d(nhwc, [B, H, W, C]));
      expect(x.shape).toEqual([B, C, H, W]);
      expect(Array.from(x.dataSync())).toEqual(Array.from(nchwData));
    });
  });

  it('round trips in both directions exactly', () => {
    tf.tidy(() => {
      const x = tf.tensor4d(nchwData, [B, C, H, W]);
      expect(Array.from(nhwcToNchw(nchwToNhwc(x)).dataSync())).toEqual(Array.from(nchwData));
      const y = tf.tensor4d(nchwData, [B, H, W, C]); // any data, read as NHWC
      const back = nchwToNhwc(nhwcToNchw(y));
      expect(back.shape).toEqual([B, H, W, C]);
      expect(Array.from(back.dataSync())).toEqual(Array.from(nchwData));
    });
  });
});

describe('maxAbsDiff', () => {
  it('is the largest |a − b| and 0 for equal tensors', () => {
    tf.tidy(() => {
      const a = tf.tensor([1, 2, 3, 4], [2, 2]);
      expect(maxAbsDiff(a, a)).toBe(0);
      expect(maxAbsDiff(a, tf.tensor([1, 2.5, 3, 1], [2, 2]))).toBe(3);
      expect(maxAbsDiff(a, tf.tensor([1.25, 2, 3, 4], [2, 2]))).toBe(0.25);
      expect(maxAbsDiff(tf.tensor([-5]), tf.tensor([5]))).toBe(10);
    });
  });

  it('a NaN anywhere gives Infinity (never a silently small number)', () => {
    tf.tidy(() => {
      const a = tf.tensor([1, 2, 3]);
      expect(maxAbsDiff(a, tf.tensor([Number.NaN, 2, 3]))).toBe(Number.POSITIVE_INFINITY);
      expect(maxAbsDiff(a, tf.tensor([1, 2, Number.NaN]))).toBe(Number.POSITIVE_INFINITY);
      expect(maxAbsDiff(tf.tensor([Number.NaN, 0, 0]), tf.tensor([Number.NaN, 100, 0]))).toBe(Number.POSITIVE_INFINITY);
      // NaN first, then a large finite difference: still Infinity.
      expect(maxAbsDiff(tf.tensor([Number.NaN, 0]), tf.tensor([0, 1e30]))).toBe(Number.POSITIVE_INFINITY);
    });
  });

  it('throws on shape mismatch, naming both shapes', () => {
    tf.tidy(() => {
      expect(() => maxAbsDiff(tf.zeros([2, 3]), tf.zeros([3, 2]))).toThrow(/shapes differ.*\[2,3\].*\[3,2\]/);
      expect(() => maxAbsDiff(tf.zeros([6]), tf.zeros([2, 3]))).toThrow(/shapes differ/);
    });
  });

  it('leaves no tensors behind', () => {
    const a = tf.ones([3]);
    const b = tf.zeros([3]);
    const before = tf.memory().numTensors;
    expect(maxAbsDiff(a, b)).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([a, b]);
  });
});

describe('sizeOf', () => {
  it('multiplies the dimensions (scalar → 1, any zero → 0)', () => {
    expect(sizeOf([])).toBe(1);
    expect(sizeOf([7])).toBe(7);
    expect(sizeOf([2, 3, 4])).toBe(24);
    expect(sizeOf([3, 3, 320, 640])).toBe(1_843_200);
    expect(sizeOf([5, 0, 2])).toBe(0);
  });
});
