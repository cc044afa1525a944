import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';
import { ADAM_UPDATE, adamUpdate, registerKernelOverrides } from '@matryoshka-ts/kernels';
import { maxAbs, maxAbsDiff, seeded } from '@matryoshka-ts/test-utils';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';
import { type NativeBase, registerNativeKernels, unregisterNativeKernels } from './register.js';

// Every native kernel against the stock cpu backend (values and gradients), on both bases and
// with both matrix-product providers and both convolution providers, plus finite differences. The addon is built by
// `pnpm install`; where it could not be built these tests skip, or fail when MDM_REQUIRE_NATIVE=1 (CI).
const loaded = loadAddon();
const haveAddon = loaded.addon !== undefined;
if (!haveAddon && process.env.MDM_REQUIRE_NATIVE === '1')
  throw new Error(`MDM_REQUIRE_NATIVE=1 but the native addon is missing: ${(loaded as { reason: string }).reason}`);
const info = haveAddon ? loaded.addon!.info() : undefined;
// Each setup names the sgemm and the convolutions: the addon's own, OpenBLAS, oneDNN (the default where installed).
type Setup = { name: string; gemm: 'builtin' | 'openblas'; conv: 'builtin' | 'onednn' };
const providers: Setup[] = [
  { name: 'builtin', gemm: 'builtin', conv: 'builtin' },
  ...(info?.openblas ? [{ name: 'openblas', gemm: 'openblas', conv: 'builtin' } as Setup] : []),
  ...(info?.onednn ? [{ name: 'onednn', gemm: info.openblas ? 'openblas' : 'builtin', conv: 'onednn' } as Setup] : []),
];
const useSetup = (s: Setup) => {
  loaded.addon!.setProvider(s.gemm);
  loaded.addon!.setConvProvider(s.conv);
};
const defaultSetup = providers[providers.length - 1];

let uniform = seeded(1);
/** Restarts the generator, so two backends' runs draw the same data. */
const reseed = (seed: number) => (uniform = seeded(seed));
const rand = () => uniform() * 2 - 1; // in [-1, 1)
const randoms = (shape: number[]) => Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, rand);

interface ConvCase {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  strides: number | [number, number];
  pad: 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];
  dilations?: number;
}
const convCases: ConvCase[] = [
  { name: '3×3 same stride 1', x: [2, 7, 5, 3], w: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: '3×3 same stride 2, odd sizes', x: [1, 7, 9, 3], w: [3, 3, 3, 5], strides: 2, pad: 'same' },
  {
    name: '3×3 valid stride 2 (as the model downsamples)',
    x: [2, 10, 10, 4],
    w: [3, 3, 4, 6],
    strides: 2,
    pad: 'valid',
  },
  {
    name: '2×3 valid stride [1, 2]',
    x: [3, 6, 7, 2],
    w: [2, 3, 2, 3],
    strides: [1, 2],
    pad: 'valid',
  },
  { name: '1×1 stride 1 (a plain product)', x: [2, 4, 5, 6], w: [1, 1, 6, 7], strides: 1, pad: 'valid' },
  { name: '1×1 stride 2', x: [1, 5, 5, 4], w: [1, 1, 4, 3], strides: 2, pad: 'valid' },
  {
    name: '3×3 explicit padding, batch 1',
    x: [1, 5, 6, 2],
    w: [3, 3, 2, 2],
    strides: 1,
    pad: [
      [0, 0],
      [2, 0],
      [1, 1],
      [0, 0],
    ],
  },
  { name: '5×5 same, 17 channels', x: [2, 9, 8, 17], w: [5, 5, 17, 9], strides: 1, pad: 'same' },
  // Widths 8/16/32 with ≤ 32 input channels take the direct kernels (native/conv.cc).
  { name: 'direct: 3×3 same 8→8', x: [2, 9, 7, 8], w: [3, 3, 8, 8], strides: 1, pad: 'same' },
  { name: 'direct: 3×3 valid stride 2, 16→32', x: [1, 9, 9, 16], w: [3, 3, 16, 32], strides: 2, pad: 'valid' },
  {
    name: 'direct: asymmetric explicit padding 8→16, odd sizes',
    x: [3, 6, 5, 8],
    w: [3, 3, 8, 16],
    strides: 1,
    pad: [
      [0, 0],
      [2, 0],
      [1, 1],
      [0, 0],
    ],
  },
  { name: 'direct: 2×3 kernel same 32→8', x: [2, 5, 6, 32], w: [2, 3, 32, 8], strides: 1, pad: 'same' },
];

interface ConvResult {
  y: Float32Array;
  dx: Float32Array;
  dw: Float32Array;
}

/** y = conv(x, w), and the gradients of Σ r·y (r random, so dy is not constant). */
function convRun(c: ConvCase, data: { x: Float32Array; w: Float32Array; r?: Float32Array }): ConvResult {
  return tf.tidy(() => {
    const f = (x: tf.Tensor, w: tf.Tensor) =>
      tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1);
    const x = tf.tensor4d(data.x, c.x);
    const w = tf.tensor4d(data.w, c.w);
    const y = f(x, w);
    if (c.dilations && c.dilations > 1)
      return { y: y.dataSync() as Float32Array, dx: new Float32Array(), dw: new Float32Array() };
    const r = tf.tensor(data.r ?? randoms(y.shape), y.shape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(r, f(a, b))))([x, w]);
    return { y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array };
  });
}

async function onBackend<T>(name: string, f: () => T): Promise<T> {
  await tf.setBackend(name);
  return f();
}

// float32 products of ≤ 425 terms of size ≤ 1 agree to a few 1e-6 relative; 1e-5 of the largest
// entry leaves room for the different summation orders of the blocked kernels.
const close = (a: Float32Array, b: Float32Array) => maxAbsDiff(a, b) <= 1e-5 * Math.max(1, maxAbs(b));

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  registerKernelOverrides();
  await tf.ready();
});
afterAll(() => {
  for (const base of ['cpu', 'wasm'] as const) unregisterNativeKernels(base);
});

describe.skipIf(!haveAddon)('native kernels match the stock cpu backend', () => {
  for (const base of ['wasm', 'cpu'] as NativeBase[])
    for (const provider of providers)
      describe(`${base} + ${provider.name}`, () => {
        afterEach(() => useSetup(defaultSetup));
        it.each(convCases)('conv2d values and gradients: $name', async (c) => {
          const data = { x: randoms(c.x), w: randoms(c.w) };
          const outShape = tf.backend_util.computeConv2DInfo(c.x, c.w, c.strides, 1, c.pad as 'same').outShape;
          const withR = { ...data, r: randoms(outShape) };
          unregisterNativeKernels('cpu');
          const want = await onBackend('cpu', () => convRun(c, withR));
          useSetup(provider);
          registerNativeKernels(base);
          const before = loaded.addon!.info();
          const got = await onBackend(base, () => convRun(c, withR));
          const after = loaded.addon!.info();
          unregisterNativeKernels(base);
          expect(close(got.y, want.y)).toBe(true);
          expect(close(got.dx, want.dx)).toBe(true);
          expect(close(got.dw, want.dw)).toBe(true);
          // Every direction went to oneDNN, which ran it or declined it back to the addon: which of
          // the two depends on the implementations oneDNN has for this CPU (AVX2, AVX-512), so only
          // the values above are asserted, and that each direction was dispatched.
          if (provider.conv === 'onednn') {
            const dispatched = after.onednnCalls + after.onednnDeclined - before.onednnCalls - before.onednnDeclined;
            expect(dispatched).toBeGreaterThanOrEqual(3);
            // …and the addon says, per direction, which implementation it planned with or why not.
            const seen = Object.keys(after.onednnImplementations).map((k) => k.split(': ')[0]);
            expect(new Set(seen)).toEqual(new Set(['forward', 'backward data', 'backward weights']));
          }
        });

        it('dilated forward convolution', async () => {
          const c: ConvCase = {
            name: 'dilated',
            x: [2, 9, 9, 3],
            w: [3, 3, 3, 8],
            strides: 1,
            pad: 'same',
            dilations: 2,
          };
          const data = { x: randoms(c.x), w: randoms(c.w) };
          unregisterNativeKernels('cpu');
          const want = await onBackend('cpu', () => convRun(c, data));
          useSetup(provider);
          registerNativeKernels(base);
          const got = await onBackend(base, () => convRun(c, data));
          unregisterNativeKernels(base);
          expect(close(got.y, want.y)).toBe(true);
        });

        const mmCases: [string, number[], number[], boolean, boolean][] = [
          ['2-D', [13, 7], [7, 11], false, false],
          ['2-D, A transposed', [7, 13], [7, 11], true, false],
          ['2-D, B transposed', [13, 7], [11, 7], false, true],
          ['2-D, both transposed', [7, 13], [11, 7], true, true],
          ['batched 4-D (attention heads)', [2, 3, 9, 5], [2, 3, 5, 6], false, false],
          ['batched, B transposed', [2, 3, 9, 5], [2, 3, 6, 5], false, true],
          ['batch-1 B broadcast', [4, 9, 5], [1, 5, 6], false, false],
          ['rank-2 B broadcast to rank 3', [4, 9, 5], [5, 6], false, false],
          ['one row (batch 1, a vector)', [1, 64], [64, 3], false, false],
          ['large (threaded path)', [300, 200], [200, 130], false, false],
          // 1×1-convolution shapes with few channels take the direct kernels (narrowProduct).
          ['narrow: x·W, 12 → 8', [300, 12], [12, 8], false, false],
          ['narrow: xᵀ·dy, 16 → 32', [200, 16], [200, 32], true, false],
          ['narrow: dy·Wᵀ, 8 ← 16', [150, 16], [8, 16], false, true],
        ];
        it.each(mmCases)('matMul values and gradients: %s', async (_name, sa, sb, ta, tb) => {
          const a = randoms(sa),
            b = randoms(sb);
          const runMm = () =>
            tf.tidy(() => {
              const A = tf.tensor(a, sa),
                B = tf.tensor(b, sb);
              const y = tf.matMul(A, B, ta, tb);
              const r = tf.tensor(
                Float32Array.from({ length: y.size }, (_, i) => Math.sin(i)),
                y.shape,
              );
              const [da, db] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(r, tf.matMul(p, q, ta, tb))))([
                A,
                B,
              ]);
              return {
                y: y.dataSync() as Float32Array,
                shape: y.shape,
                da: da.dataSync() as Float32Array,
                db: db.dataSync() as Float32Array,
              };
            });
          unregisterNativeKernels('cpu');
          const want = await onBackend('cpu', runMm);
          useSetup(provider);
          registerNativeKernels(base);
          const got = await onBackend(base, runMm);
          unregisterNativeKernels(base);
          expect(got.shape).toEqual(want.shape);
          expect(close(got.y, want.y)).toBe(true);
          expect(close(got.da, want.da)).toBe(true);
          expect(close(got.db, want.db)).toBe(true);
        });
      });

  it('finite differences agree with the native gradients (directional derivative)', async () => {
    const c = convCases[2]; // stride 2, valid: exercises the scatter-add of col2im
    const x = randoms(c.x),
      w = randoms(c.w),
      vx = randoms(c.x),
      vw = randoms(c.w);
    const outShape = tf.backend_util.computeConv2DInfo(c.x, c.w, c.strides, 1, c.pad as 'valid').outShape;
    const r = randoms(outShape);
    registerNativeKernels('wasm');
    await tf.setBackend('wasm');
    const loss = (xs: Float32Array, ws: Float32Array) =>
      tf.tidy(() => {
        const y = tf.conv2d(tf.tensor4d(xs, c.x), tf.tensor4d(ws, c.w), c.strides, c.pad).dataSync();
        let s = 0;
        for (let i = 0; i < y.length; i++) s += r[i] * y[i]; // Σ r·y: the backprop kernels are linear in dy = r
        return s;
      });
    const g = tf.tidy(() => {
      const rT = tf.tensor(r, outShape);
      const [dx, dw] = tf.grads((p: tf.Tensor, q: tf.Tensor) =>
        tf.sum(tf.mul(rT, tf.conv2d(p as tf.Tensor4D, q as tf.Tensor4D, c.strides, c.pad))),
      )([tf.tensor4d(x, c.x), tf.tensor4d(w, c.w)]);
      return { dx: dx.dataSync(), dw: dw.dataSync() };
    });
    // The loss is quadratic along the joint direction (y is bilinear in x, w), so the central
    // difference is exact but for rounding: ~200 float32 outputs |y| ≲ 6 give ~1e-5 in the loss,
    // ~5e-4 after dividing by 2·eps.
    const eps = 1e-2;
    const shift = (a: Float32Array, v: Float32Array, s: number) => a.map((ai, i) => ai + s * v[i]);
    const numeric =
      (loss(shift(x, vx, eps), shift(w, vw, eps)) - loss(shift(x, vx, -eps), shift(w, vw, -eps))) / (2 * eps);
    let analytic = 0;
    for (let i = 0; i < vx.length; i++) analytic += g.dx[i] * vx[i];
    for (let i = 0; i < vw.length; i++) analytic += g.dw[i] * vw[i];
    unregisterNativeKernels('wasm');
    expect(Math.abs(numeric - analytic)).toBeLessThan(1e-3 * Math.abs(analytic) + 2e-3);
  });

  const transposedGradTitle =
    'finite differences agree with the native batched matMul gradients (transposed B, as attention uses)';
  it(transposedGradTitle, async () => {
    const sa = [2, 3, 7, 5],
      sb = [2, 3, 6, 5];
    const a = randoms(sa),
      b = randoms(sb),
      va = randoms(sa),
      vb = randoms(sb),
      r = randoms([2, 3, 7, 6]);
    registerNativeKernels('wasm');
    await tf.setBackend('wasm');
    const loss = (p: Float32Array, q: Float32Array) =>
      tf.tidy(() => {
        const y = tf.matMul(tf.tensor(p, sa), tf.tensor(q, sb), false, true).dataSync();
        let s = 0;
        for (let i = 0; i < y.length; i++) s += r[i] * y[i];
        return s;
      });
    const [da, db] = tf.tidy(() =>
      tf
        .grads((p: tf.Tensor, q: tf.Tensor) =>
          tf.sum(tf.mul(tf.tensor(r, [2, 3, 7, 6]), tf.matMul(p, q, false, true))),
        )([tf.tensor(a, sa), tf.tensor(b, sb)])
        .map((g) => g.dataSync()),
    );
    const eps = 1e-2;
    const shift = (x: Float32Array, v: Float32Array, s: number) => x.map((xi, i) => xi + s * v[i]);
    const numeric =
      (loss(shift(a, va, eps), shift(b, vb, eps)) - loss(shift(a, va, -eps), shift(b, vb, -eps))) / (2 * eps);
    let analytic = 0;
    va.forEach((v, i) => (analytic += v * da[i]));
    vb.forEach((v, i) => (analytic += v * db[i]));
    unregisterNativeKernels('wasm');
    // Bilinear loss: the central difference is exact but for float32 rounding (~1e-6 / 2·eps).
    expect(Math.abs(numeric - analytic)).toBeLessThan(1e-3 * Math.abs(analytic) + 1e-3);
  });

  it('on wasm, Conv2DBackpropFilter exists only while the native kernels are registered', async () => {
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    registerNativeKernels('wasm');
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    unregisterNativeKernels('wasm');
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(tf.getKernel('Conv2D', 'wasm')).toBeDefined(); // the stock kernel is back
  });

  it('a training-like loop of native convolutions leaks no tensors', async () => {
    registerNativeKernels('wasm');
    await tf.setBackend('wasm');
    const w = tf.variable(tf.tensor4d(randoms([3, 3, 4, 4]), [3, 3, 4, 4]));
    const x = tf.tensor4d(randoms([2, 8, 8, 4]), [2, 8, 8, 4]);
    const step = () => {
      const { value, grads } = tf.variableGrads(
        () => tf.mean(tf.square(tf.conv2d(x, w as unknown as tf.Tensor4D, 1, 'same'))) as tf.Scalar,
        [w],
      );
      const next = tf.tidy(() => tf.sub(w, tf.mul(0.01, grads[w.name])) as tf.Tensor4D);
      w.assign(next);
      next.dispose();
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([w, x]);
    unregisterNativeKernels('wasm');
  });

  it('the fused Adam update equals the tfjs-ops formula on the cpu backend', async () => {
    const attrs = { lr: 3e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, c1: 1 - 0.9 ** 3, c2: Math.sqrt(1 - 0.99 ** 3) };
    const shape = [5, 7, 3];
    const results = async (name: string) =>
      onBackend(name, () =>
        tf.tidy(() => {
          reseed(11);
          const [p, g, m] = [randoms(shape), randoms(shape), randoms(shape)].map((d) => tf.tensor(d, shape));
          const v = tf.abs(tf.tensor(randoms(shape), shape));
          return adamUpdate(p, g, m, v, attrs).map((t) => t.dataSync() as Float32Array);
        }),
      );
    const want = await results('cpu');
    registerNativeKernels('wasm');
    expect(tf.getKernel(ADAM_UPDATE, 'wasm')).toBeDefined();
    const got = await results('wasm');
    unregisterNativeKernels('wasm');
    expect(tf.getKernel(ADAM_UPDATE, 'wasm')).toBeUndefined();
    // Same float32 operations in the same order; fused multiply-adds may move the last bit.
    got.forEach((g, i) =>
      expect(maxAbsDiff(g, want[i]), `output ${i}`).toBeLessThanOrEqual(1e-6 * Math.max(1, maxAbs(want[i]))),
    );
    await tf.setBackend('cpu');
  });

  it('the addon rejects arrays that are too short instead of reading past them', () => {
    expect(() => loaded.addon!.copyRows(new Float32Array(5), 0, 3, new Float32Array(6), 0, 3, 2, 3)).toThrow(
      /holds 5 floats, needs 6/,
    );
    expect(() => loaded.addon!.copyRows(new Float32Array(6), 0, 2, new Float32Array(6), 0, 3, 2, 3)).toThrow(
      /bad geometry/,
    );
    const a = loaded.addon!;
    expect(() =>
      a.gemm(false, false, 4, 4, 4, new Float32Array(15), new Float32Array(16), new Float32Array(16)),
    ).toThrow(/holds 15 floats, needs 16/);
    expect(() =>
      a.conv2d(
        new Float32Array(4),
        new Float32Array(9),
        new Float32Array(4),
        [1, 2, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2, 2],
      ),
    ).not.toThrow();
    expect(() =>
      a.conv2d(
        new Float32Array(3),
        new Float32Array(9),
        new Float32Array(4),
        [1, 2, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2, 2],
      ),
    ).toThrow(RangeError);
    expect(() =>
      a.gemm(false, false, 1, 1, 1, [1] as unknown as Float32Array, new Float32Array(1), new Float32Array(1)),
    ).toThrow(/Float32Array/);
  });
});
