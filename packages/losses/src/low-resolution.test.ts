import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { downsample, lowResolutionTargets } from './low-resolution.js';
import { leakedBy, maxAbsDiff, rngFor, uniformF32 } from './test-helpers.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

/** A 1×4×4×2 image: channel 0 holds 0…15 row by row, channel 1 holds 100 − that. */
function ramp(): tf.Tensor4D {
  const values: number[] = [];
  for (let i = 0; i < 16; i++) values.push(i, 100 - i);
  return tf.tensor4d(values, [1, 4, 4, 2]);
}

/** Mean of each r×r block of a [B, H, W, C] array, in float64. */
function blockMeans(x: ArrayLike<number>, [B, H, W, C]: number[], r: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let i = 0; i < H / r; i++)
      for (let j = 0; j < W / r; j++)
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let di = 0; di < r; di++)
            for (let dj = 0; dj < r; dj++) s += x[((b * H + i * r + di) * W + j * r + dj) * C + c];
          out.push(s / (r * r));
        }
  return out;
}

describe('low-resolution targets', () => {
  it('average pooling 2×2 gives the hand-computed block means', () => {
    const x = ramp();
    const low = downsample(x, 2);
    // Blocks {0,1,4,5}, {2,3,6,7}, {8,9,12,13}, {10,11,14,15}: means 2.5, 4.5, 10.5, 12.5.
    expect(low.shape).toEqual([1, 2, 2, 2]);
    expect(Array.from(low.dataSync())).toEqual([2.5, 97.5, 4.5, 95.5, 10.5, 89.5, 12.5, 87.5]);
    tf.dispose([x, low]);
  });

  it('every level is the previous one pooled by the size ratio (cascade = direct box filter)', () => {
    const shape = [2, 16, 16, 3];
    const values = uniformF32(rngFor(1), 2 * 16 * 16 * 3);
    const x = tf.tensor4d(values, shape as [number, number, number, number]);
    const levels = lowResolutionTargets(x, [16, 8, 2]);
    expect(levels.map((l) => l.shape)).toEqual([shape, [2, 8, 8, 3], [2, 2, 2, 3]]);
    expect(Array.from(levels[0].dataSync())).toEqual(Array.from(values));
    // float32 means of 4 and then 16 values in [−1, 1]: ≤ 1e-6.
    expect(maxAbsDiff(levels[1].dataSync(), blockMeans(values, shape, 2))).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(levels[2].dataSync(), blockMeans(values, shape, 8))).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, levels]);
  });

  it('bilinear (half-pixel centres) halves by 2×2 means and quarters by the centre 2×2 of each 4×4 block', () => {
    const values = uniformF32(rngFor(2), 8 * 8);
    const x = tf.tensor4d(values, [1, 8, 8, 1]);
    const half = downsample(x, 4, 'bilinear');
    const quarter = downsample(x, 2, 'bilinear');
    expect(maxAbsDiff(half.dataSync(), blockMeans(values, [1, 8, 8, 1], 2))).toBeLessThanOrEqual(1e-6);
    const centres = [0, 1].flatMap((i) =>
      [0, 1].map(
        (j) =>
          [1, 2].flatMap((a) => [1, 2].map((b) => values[(4 * i + a) * 8 + 4 * j + b])).reduce((s, v) => s + v, 0) / 4,
      ),
    );
    expect(maxAbsDiff(quarter.dataSync(), centres)).toBeLessThanOrEqual(1e-6);
    const cascaded = lowResolutionTargets(x, [8, 4, 2], 'bilinear');
    expect(maxAbsDiff(cascaded[2].dataSync(), blockMeans(values, [1, 8, 8, 1], 4))).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, half, quarter, cascaded]);
  });

  it('rejects sizes it cannot make', () => {
    const x = tf.zeros([1, 6, 6, 3]) as tf.Tensor4D;
    const wide = tf.zeros([1, 4, 8, 3]) as tf.Tensor4D;
    expect(() => downsample(x, 4)).toThrow(/needs 4 to divide 6/);
    expect(() => downsample(x, 8)).toThrow(/cannot make 8×8/);
    expect(() => downsample(wide, 2)).toThrow(/square/);
    expect(() => downsample(x, 3, 'nearest' as 'avgpool')).toThrow(/unknown method 'nearest'/);
    expect(() => lowResolutionTargets(x, [8, 4])).toThrow(/image is 6 px but level 0 is 8 px/);
    expect(() => lowResolutionTargets(x, [6, 3, 6])).toThrow(/level 2 \(6 px\) is larger/);
    expect(() => lowResolutionTargets(x, [])).toThrow(/at least one level/);
    tf.dispose([x, wide]);
  });

  it('leaks no tensors', () => {
    const x = tf.ones([1, 8, 8, 3]) as tf.Tensor4D;
    expect(
      leakedBy(() =>
        tf.dispose([lowResolutionTargets(x, [8, 4, 2]), lowResolutionTargets(x, [8, 2], 'bilinear'), downsample(x, 8)]),
      ),
    ).toBe(0);
    expect(leakedBy(() => expect(() => lowResolutionTargets(x, [8, 3])).toThrow())).toBe(0);
    x.dispose();
  });
});

describe('clips: the temporal D^r', () => {
  it('a level of one frame below a clip is its first frame; a level over the clip pools each frame', () => {
    const [B, F, r] = [2, 4, 8];
    const clips = tf.tensor4d(
      Float32Array.from({ length: B * F * r * r * 3 }, (_, i) => Math.sin(i)),
      [B * F, r, r, 3],
    );
    const [top, perFrame, first] = lowResolutionTargets(clips, [8, 4, 4], 'avgpool', [4, 4, 1]);
    expect(perFrame.shape).toEqual([B * F, 4, 4, 3]);
    expect(first.shape).toEqual([B, 4, 4, 3]);
    // Per frame: row b·F + f of the pooled clip is frame f of sample b pooled on its own.
    const frame = (t: tf.Tensor4D, row: number) => tf.slice(t, [row, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
    const diff = (a: tf.Tensor, b: tf.Tensor) => maxAbsDiff(a.dataSync(), b.dataSync());
    tf.tidy(() => {
      for (const row of [0, 5, 7]) expect(diff(frame(perFrame, row), downsample(frame(clips, row), 4))).toBe(0);
      // First frame of each clip: rows 0 and F of the pooled clip.
      expect(diff(frame(first, 0), frame(perFrame, 0))).toBe(0);
      expect(diff(frame(first, 1), frame(perFrame, F))).toBe(0);
    });
    expect(() => lowResolutionTargets(clips, [8, 8], 'avgpool', [4, 2])).toThrow(/keeps its clip or takes its first/);
    expect(() => lowResolutionTargets(clips, [8, 8], 'avgpool', [3, 1])).toThrow(/not whole clips of 3 frames/);
    tf.dispose([clips, top, perFrame, first]);
  });
});
