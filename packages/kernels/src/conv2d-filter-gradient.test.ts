import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { conv2dFilterGradient } from './conv2d-filter-gradient.js';
import {
  type ConvGeometry,
  filterGradDirect,
  maxAbs,
  maxAbsDiff,
  randomF32,
  samePads,
  seeded,
} from './test-helpers.js';

type Pad = 'same' | 'valid' | number[][];

beforeAll(async () => {
  tf.env().set('IS_TEST', true); // silences the cpu backend's tfjs-node advert
  await tf.setBackend('cpu');
});

/** tfjs's own filter gradient kernel (cpu backend). */
function stockFilterGradient(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  pad: Pad,
): tf.Tensor {
  return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
    strides,
    pad,
    dataFormat: 'NHWC',
    dimRoundingMode: undefined,
    filterShape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

interface Case {
  batch: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  kh: number;
  kw: number;
  stride: number | [number, number];
  pad: Pad;
}

const EXPLICIT: number[][] = [
  [0, 0],
  [1, 1],
  [1, 1],
  [0, 0],
];
const cases: Case[] = [];
for (const [kh, kw] of [
  [1, 1],
  [3, 3],
  [2, 3],
] as const)
  for (const stride of [1, 2])
    for (const pad of ['same', 'valid', EXPLICIT] as Pad[])
      for (const batch of [1, 3]) cases.push({ batch, h: 7, w: 5, cin: 3, cout: 4, kh, kw, stride, pad });
// A few extra shapes: even sizes, wide channels, a kernel as large as the input.
cases.push({ batch: 2, h: 8, w: 6, cin: 5, cout: 2, kh: 3, kw: 3, stride: 2, pad: 'same' });
cases.push({ batch: 1, h: 9, w: 11, cin: 16, cout: 8, kh: 3, kw: 3, stride: 1, pad: 'same' });
cases.push({ batch: 2, h: 5, w: 5, cin: 2, cout: 3, kh: 5, kw: 5, stride: 1, pad: 'valid' });
cases.push({ batch: 3, h: 7, w: 5, cin: 3, cout: 2, kh: 2, kw: 3, stride: [1, 2], pad: 'same' });
cases.push({
  batch: 1,
  h: 6,
  w: 7,
  cin: 1,
  cout: 1,
  kh: 3,
  kw: 2,
  stride: 3,
  pad: [
    [0, 0],
    [2, 0],
    [0, 1],
    [0, 0],
  ],
});

const padLabel = (p: Pad) => (typeof p === 'string' ? p : JSON.stringify(p));

describe('conv2dFilterGradient equals tfjs Conv2DBackpropFilter (cpu)', () => {
  it.each(
    cases.map(
      (c) =>
        [`${c.batch}×${c.h}×${c.w}×${c.cin} k${c.kh}×${c.kw}→${c.cout} s${c.stride} ${padLabel(c.pad)}`, c] as const,
    ),
  )('%s', (_label, c) => {
    const rand = seeded(c.batch * 1000 + c.kh * 100 + c.kw * 10 + c.cout + c.h);
    const filterShape: [number, number, number, number] = [c.kh, c.kw, c.cin, c.cout];
    const info = tf.backend_util.computeConv2DInfo(
      [c.batch, c.h, c.w, c.cin],
      filterShape,
      c.stride,
      1,
      c.pad as 'same',
      'floor',
    );
    tf.tidy(() => {
      const x = tf.tensor4d(randomF32(rand, c.batch * c.h * c.w * c.cin), [c.batch, c.h, c.w, c.cin]);
      const dy = tf.tensor4d(randomF32(rand, c.batch * info.outHeight * info.outWidth * c.cout), [
        c.batch,
        info.outHeight,
        info.outWidth,
        c.cout,
      ]);
      const ours = conv2dFilterGradient(x, dy, filterShape, c.stride, c.pad);
      const stock = stockFilterGradient(x, dy, filterShape, c.stride, c.pad);
      expect(ours.shape).toEqual(filterShape);
      expect(stock.shape).toEqual(filterShape);
      const a = ours.dataSync();
      const b = stock.dataSync();
      // Both sum the same ≤ B·outH·outW (≤ 105 here) float32 products, in a different order.
      // Reordering changes a float32 sum by ≤ 2·n·u·Σ|terms|; with |x|,|dy| < 1 and mean-zero
      // data, Σ|terms| is a few times the largest |entry|, so 1e-4 of the largest entry is a
      // bound with margin (n·u ≈ 6e-6), and orders of magnitude below any indexing error.
      expect(maxAbs(a)).toBeGreaterThan(0.1);
      expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-4 * maxAbs(b));
    });
  });
});

describe('conv2dFilterGradient against a float64 direct reference', () => {
  const geometries: Array<{ name: string; g: ConvGeometry; pad: Pad; dilations: number | [number, number] }> = [
    {
      name: '3×3 same stride 1',
      g: { xShape: [2, 7, 5, 3], filterShape: [3, 3, 3, 4], stride: [1, 1], pads: samePads(7, 5, 3, 3, 1, 1) },
      pad: 'same',
      dilations: 1,
    },
    {
      name: '2×3 same stride 2 (asymmetric padding)',
      g: { xShape: [1, 7, 5, 2], filterShape: [2, 3, 2, 3], stride: [2, 2], pads: samePads(7, 5, 2, 3, 2, 2) },
      pad: 'same',
      dilations: 1,
    },
    {
      name: '3×3 valid stride [2, 1]',
      g: { xShape: [3, 7, 6, 2], filterShape: [3, 3, 2, 2], stride: [2, 1], pads: [0, 0, 0, 0] },
      pad: 'valid',
      dilations: 1,
    },
    {
      name: '3×3 dilation 2 valid',
      g: { xShape: [1, 9, 8, 2], filterShape: [3, 3, 2, 3], stride: [1, 1], dilation: [2, 2], pads: [0, 0, 0, 0] },
      pad: 'valid',
      dilations: 2,
    },
    {
      name: '3×3 dilation 2 same',
      g: {
        xShape: [2, 7, 5, 2],
        filterShape: [3, 3, 2, 2],
        stride: [1, 1],
        dilation: [2, 2],
        pads: samePads(7, 5, 3, 3, 1, 1, 2, 2),
      },
      pad: 'same',
      dilations: 2,
    },
  ];

  it.each(geometries.map((c) => [c.name, c] as const))('%s', (_name, { g, pad, dilations }) => {
    const rand = seeded(42);
    const info = tf.backend_util.computeConv2DInfo(
      g.xShape,
      g.filterShape,
      g.stride,
      dilations,
      pad as 'same',
      'floor',
    );
    const [B, H, W, C] = g.xShape;
    const xData = randomF32(rand, B * H * W * C);
    const dyData = randomF32(rand, B * info.outHeight * info.outWidth * g.filterShape[3]);
    const ref = filterGradDirect(xData, dyData, g);
    const ours = tf.tidy(() =>
      conv2dFilterGradient(
        tf.tensor4d(xData, g.xShape),
        tf.tensor4d(dyData, [B, info.outHeight, info.outWidth, g.filterShape[3]]),
        g.filterShape,
        g.stride,
        pad,
        dilations,
      ).dataSync(),
    );
    expect(ours.length).toBe(ref.grad.length);
    const n = B * info.outHeight * info.outWidth;
    for (let k = 0; k < ref.grad.length; k++) {
      // Float32 summation of n exact float64 products (float32·float32 products are exact in
      // float64 but rounded to float32 here): |error| ≤ (n + 1)·u·Σ|terms| (Higham's γ_n).
      expect(Math.abs(ours[k] - ref.grad[k])).toBeLessThanOrEqual((n + 1) * 2 ** -24 * ref.absSum[k] + 1e-30);
    }
  });
});

describe('conv2dFilterGradient bookkeeping', () => {
  it('accepts strides and dilations as numbers or pairs, with the same result', () => {
    const rand = seeded(7);
    tf.tidy(() => {
      const x = tf.tensor4d(randomF32(rand, 2 * 6 * 6 * 2), [2, 6, 6, 2]);
      const dy = tf.tensor4d(randomF32(rand, 2 * 3 * 3 * 3), [2, 3, 3, 3]);
      const a = conv2dFilterGradient(x, dy, [3, 3, 2, 3], 2, 'same');
      const b = conv2dFilterGradient(x, dy, [3, 3, 2, 3], [2, 2], 'same', [1, 1]);
      expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    });
  });

  it('returns one new tensor and keeps no intermediates', () => {
    const rand = seeded(8);
    const x = tf.tensor4d(randomF32(rand, 1 * 7 * 5 * 3), [1, 7, 5, 3]);
    const dy = tf.tensor4d(randomF32(rand, 1 * 7 * 5 * 4), [1, 7, 5, 4]);
    const before = tf.memory().numTensors;
    const g = conv2dFilterGradient(x, dy, [3, 3, 3, 4], 1, 'same');
    expect(tf.memory().numTensors).toBe(before + 1);
    g.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // Inputs are left alone.
    expect(x.isDisposed).toBe(false);
    expect(dy.isDisposed).toBe(false);
    tf.dispose([x, dy]);
  });
});
