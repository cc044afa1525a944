import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-layers'; // registers tfjs-core's gradients, as backends' initBackend does
import * as tf from '@tensorflow/tfjs-core';
import { CONV_BIAS, type ConvPadding, convBias, registerKernelOverrides } from '@matryoshka-ts/kernels';
import { maxAbs, maxAbsDiff, seeded } from '@matryoshka-ts/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';
import { type NativeBase, registerNativeKernels, unregisterNativeKernels } from './register.js';

// The fused convolution + bias (+ residual) of @matryoshka-ts/kernels: the native kernels against
// the tfjs-ops composite on the stock cpu backend (values and the gradients of all four inputs),
// and finite differences.
const loaded = loadAddon();
const haveAddon = loaded.addon !== undefined;

const uniform = seeded(7);
const rand = () => uniform() * 2 - 1; // in [-1, 1)
const randoms = (shape: number[]) => Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, rand);

interface Case {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  strides: number;
  pad: ConvPadding;
  residual: boolean;
}
const cases: Case[] = [
  {
    name: '3×3 same, with residual (a residual block’s conv2)',
    x: [2, 6, 5, 8],
    w: [3, 3, 8, 8],
    strides: 1,
    pad: 'same',
    residual: true,
  },
  {
    name: '3×3 same, 3 → 5 channels, no residual',
    x: [1, 7, 7, 3],
    w: [3, 3, 3, 5],
    strides: 1,
    pad: 'same',
    residual: false,
  },
  {
    name: '3×3 stride 2, PyTorch padding 1/1 (the downsampler), odd size',
    x: [2, 9, 7, 4],
    w: [3, 3, 4, 6],
    strides: 2,
    pad: [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ],
    residual: false,
  },
  {
    name: '1×1 valid, batch 1, with residual',
    x: [1, 4, 4, 16],
    w: [1, 1, 16, 16],
    strides: 1,
    pad: 'valid',
    residual: true,
  },
];

function outShapeOf(c: Case): number[] {
  const pad = Array.isArray(c.pad)
    ? [
        [c.pad[1][0], c.pad[1][1]],
        [c.pad[2][0], c.pad[2][1]],
      ]
    : c.pad;
  const h = c.x[1],
    w = c.x[2],
    k = c.w[0];
  if (Array.isArray(pad))
    return [
      c.x[0],
      Math.floor((h + pad[0][0] + pad[0][1] - k) / c.strides) + 1,
      Math.floor((w + pad[1][0] + pad[1][1] - k) / c.strides) + 1,
      c.w[3],
    ];
  return tf.backend_util.computeConv2DInfo(c.x, c.w, c.strides, 1, pad).outShape;
}

/** y = convBias(...) and the gradients of Σ r·y with respect to x, W, b and the residual. */
function runCase(
  c: Case,
  d: { x: Float32Array; w: Float32Array; b: Float32Array; res: Float32Array; r: Float32Array },
) {
  return tf.tidy(() => {
    const out = outShapeOf(c);
    const inputs = [tf.tensor4d(d.x, c.x), tf.tensor4d(d.w, c.w), tf.tensor1d(d.b), tf.tensor(d.res, out)];
    const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, res: tf.Tensor) =>
      convBias(x as tf.Tensor4D, w as tf.Tensor4D, b, {
        strides: c.strides,
        pad: c.pad,
        residual: c.residual ? (res as tf.Tensor4D) : undefined,
      });
    const y = f(inputs[0], inputs[1], inputs[2], inputs[3]);
    const r = tf.tensor(d.r, y.shape);
    const grads = tf.grads((x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, res: tf.Tensor) =>
      tf.sum(tf.mul(r, tf.add(f(x, w, b, res), tf.mul(res, 0)))),
    )(inputs);
    return { shape: y.shape, y: y.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

// float32 sums of ≤ 150 products of values ≤ 1, in different orders: 1e-5 of the largest entry.
const close = (a: Float32Array, b: Float32Array) => maxAbsDiff(a, b) <= 1e-5 * Math.max(1, maxAbs(b));

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  registerKernelOverrides();
  await tf.ready();
});
afterAll(() => {
  for (const base of ['cpu', 'wasm'] as const) unregisterNativeKernels(base);
});

describe.skipIf(!haveAddon)('convBias: the fused native kernels', () => {
  for (const base of ['wasm', 'cpu'] as NativeBase[])
    it.each(cases)(
      `${base}: values and the gradients of x, W, b and the residual equal tfjs ops on cpu: $name`,
      async (c) => {
        const out = outShapeOf(c);
        const d = { x: randoms(c.x), w: randoms(c.w), b: randoms([c.w[3]]), res: randoms(out), r: randoms(out) };
        unregisterNativeKernels('cpu');
        await tf.setBackend('cpu');
        expect(tf.getKernel(CONV_BIAS, 'cpu')).toBeUndefined(); // the composite
        const want = runCase(c, d);
        registerNativeKernels(base);
        await tf.setBackend(base);
        expect(tf.getKernel(CONV_BIAS, base)).toBeDefined();
        const got = runCase(c, d);
        unregisterNativeKernels(base);
        expect(got.shape).toEqual(want.shape);
        expect(close(got.y, want.y)).toBe(true);
        for (let i = 0; i < 4; i++) expect(close(got.grads[i], want.grads[i])).toBe(true);
      },
    );

  it('finite differences agree with the fused gradients (directional derivative)', async () => {
    const c = cases[2];
    const out = outShapeOf(c);
    const d = { x: randoms(c.x), w: randoms(c.w), b: randoms([c.w[3]]), res: randoms(out), r: randoms(out) };
    const v = { x: randoms(c.x), w: randoms(c.w), b: randoms([c.w[3]]) };
    registerNativeKernels('wasm');
    await tf.setBackend('wasm');
    const loss = (s: number) =>
      tf.tidy(() => {
        const at = (a: Float32Array, dir: Float32Array) => a.map((ai, i) => ai + s * dir[i]);
        const y = convBias(tf.tensor4d(at(d.x, v.x), c.x), tf.tensor4d(at(d.w, v.w), c.w), tf.tensor1d(at(d.b, v.b)), {
          strides: c.strides,
          pad: c.pad,
        }).dataSync() as Float32Array;
        let sum = 0;
        y.forEach((yi, i) => (sum += d.r[i] * yi));
        return sum;
      });
    const g = runCase(c, d).grads;
    unregisterNativeKernels('wasm');
    // Σ r·y is quadratic along the joint direction (bilinear in x and W, linear in b): the central
    // difference is exact but for float32 rounding of ~100 outputs (~1e-5 / 2·eps).
    const eps = 1e-2;
    const numeric = (loss(eps) - loss(-eps)) / (2 * eps);
    let analytic = 0;
    for (const [i, dir] of [v.x, v.w, v.b].entries()) dir.forEach((di, j) => (analytic += di * g[i][j]));
    expect(Math.abs(numeric - analytic)).toBeLessThan(1e-3 * Math.abs(analytic) + 2e-3);
  });

  it('a training loop through the fused kernels leaks no tensors', async () => {
    registerNativeKernels('wasm');
    await tf.setBackend('wasm');
    const w = tf.variable(tf.tensor4d(randoms([3, 3, 4, 4]), [3, 3, 4, 4]));
    const b = tf.variable(tf.tensor1d(randoms([4])));
    const x = tf.tensor4d(randoms([2, 8, 8, 4]), [2, 8, 8, 4]);
    const step = () => {
      const { value, grads } = tf.variableGrads(
        () => tf.mean(tf.square(convBias(x, w as unknown as tf.Tensor4D, b, { residual: x }))) as tf.Scalar,
        [w, b],
      );
      for (const v of [w, b] as tf.Variable[]) {
        const next = tf.tidy(() => tf.sub(v, tf.mul(0.01, grads[v.name])));
        v.assign(next);
        next.dispose();
      }
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([w, b, x]);
    unregisterNativeKernels('wasm');
  });
});
