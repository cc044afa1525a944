import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  clipRowsToFrames,
  framesToClipRows,
  framesToTiled,
  maxAbsDiff,
  nchwToNhwc,
  nhwcToNchw,
  tiledToFrames,
} from './layout.js';
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

describe('tiledToFrames / framesToTiled (the official clip layout)', () => {
  // Frame k of sample b is the tile at row k // G, column k % G: checked element by element
  // against that definition, for a 2×2 and a 4×4 grid.
  for (const [frames, g] of [
    [4, 2],
    [16, 4],
  ] as const) {
    it(`${frames} frames: frame k is tile (k // ${g}, k % ${g}), and the two are inverses`, () => {
      const [B, h, w, C] = [2, 3, 5, 2];
      const tiled = new Float32Array(B * g * h * g * w * C).map((_, i) => i);
      const x = tf.tensor4d(tiled, [B, g * h, g * w, C]);
      const framesT = tiledToFrames(x, frames);
      expect(framesT.shape).toEqual([B * frames, h, w, C]);
      const got = framesT.dataSync();
      for (let b = 0; b < B; b++)
        for (let k = 0; k < frames; k++)
          for (let y = 0; y < h; y++)
            for (let xx = 0; xx < w; xx++)
              for (let c = 0; c < C; c++) {
                const row = Math.floor(k / g) * h + y;
                const col = (k % g) * w + xx;
                const want = tiled[((b * g * h + row) * g * w + col) * C + c];
                expect(got[(((b * frames + k) * h + y) * w + xx) * C + c]).toBe(want);
              }
      const back = framesToTiled(framesT, frames);
      expect(back.shape).toEqual(x.shape);
      expect(maxAbsDiff(back, x)).toBe(0);
      tf.dispose([x, framesT, back]);
    });
  }

  it('refuses a frame count that is not square, and a clip image that does not split', () => {
    const x = tf.zeros([1, 6, 6, 1]) as tf.Tensor4D;
    expect(() => tiledToFrames(x, 8)).toThrow(/square frame count/);
    expect(() => tiledToFrames(x, 16)).toThrow(/does not split into 4×4/);
    x.dispose();
  });

  it('clip rows: [B·F, h, w, C] ↔ [B, F·h, w, C] keeps each clip in one sample', () => {
    const x = tf.tensor4d(
      new Float32Array(2 * 3 * 2 * 2).map((_, i) => i),
      [6, 2, 1, 2],
    );
    const tall = framesToClipRows(x, 3);
    expect(tall.shape).toEqual([2, 6, 1, 2]);
    // Sample 1 holds frames 3, 4, 5.
    expect(Array.from(tf.slice(tall, [1], [1]).dataSync())).toEqual(Array.from(tf.slice(x, [3], [3]).dataSync()));
    expect(maxAbsDiff(clipRowsToFrames(tall, 3), x)).toBe(0);
    expect(() => framesToClipRows(x, 4)).toThrow(/not whole clips/);
    tf.dispose([x, tall]);
  });
});
