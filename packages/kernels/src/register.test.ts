import '@tensorflow/tfjs-backend-cpu';
// tfjs-layers' Node bundle registers all of tfjs-core's gradients (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerKernelOverrides } from './register.js';
import { type ConvGeometry, convDirect, maxAbs, maxAbsDiff, randomF32, samePads, seeded } from './test-helpers.js';

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
});

interface Problem {
  name: string;
  g: ConvGeometry;
  pad: Pad;
  x: Float32Array;
  w: Float32Array;
  r: Float32Array;
}

function problem(name: string, g: ConvGeometry, pad: Pad, seed: number): Problem {
  const rand = seeded(seed);
  const [B, H, W, C] = g.xShape;
  const [kh, kw, , O] = g.filterShape;
  const x = randomF32(rand, B * H * W * C);
  const w = randomF32(rand, kh * kw * C * O);
  const [oh, ow] = outSizeOf(g);
  return { name, g, pad, x, w, r: randomF32(rand, B * oh * ow * O) };
}

function outSizeOf(g: ConvGeometry): [number, number] {
  const [, h, w] = g.xShape;
  const [kh, kw] = g.filterShape;
  const [pt, pb, pl, pr] = g.pads;
  return [Math.floor((h + pt + pb - kh) / g.stride[0]) + 1, Math.floor((w + pl + pr - kw) / g.stride[1]) + 1];
}

const problems: Problem[] = [
  problem(
    '3×3 same stride 1',
    { xShape: [1, 4, 4, 2], filterShape: [3, 3, 2, 2], stride: [1, 1], pads: samePads(4, 4, 3, 3, 1, 1) },
    'same',
    1,
  ),
  problem(
    '2×3 same stride 2, odd sizes',
    { xShape: [2, 5, 3, 2], filterShape: [2, 3, 2, 3], stride: [2, 2], pads: samePads(5, 3, 2, 3, 2, 2) },
    'same',
    2,
  ),
  problem(
    '3×3 valid stride [2, 1]',
    { xShape: [2, 5, 4, 1], filterShape: [3, 3, 1, 2], stride: [2, 1], pads: [0, 0, 0, 0] },
    'valid',
    3,
  ),
  problem(
    '3×3 explicit padding',
    { xShape: [1, 3, 5, 2], filterShape: [3, 3, 2, 1], stride: [1, 1], pads: [1, 1, 1, 1] },
    [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ],
    4,
  ),
];

/** Loss L = Σ R·c + ½·Σ c², c = conv(x, w): quadratic in w and in x, so central differences are exact. */
function lossF64(p: Problem, x: ArrayLike<number>, w: ArrayLike<number>): number {
  const c = convDirect(x, w, p.g);
  let l = 0;
  for (let i = 0; i < c.length; i++) l += p.r[i] * c[i] + 0.5 * c[i] * c[i];
  return l;
}

function lossTf(p: Problem): (x: tf.Tensor, w: tf.Tensor) => tf.Scalar {
  const r = tf.tensor(p.r);
  return (x, w) => {
    const c = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, p.g.stride, p.pad);
    return tf.add(tf.sum(tf.mul(tf.reshape(r, c.shape), c)), tf.mul(0.5, tf.sum(tf.square(c))));
  };
}

/** ∂L/∂x and ∂L/∂w from tf.grads on the current backend, as plain arrays. */
function tfGrads(p: Problem): { dx: Float32Array; dw: Float32Array } {
  return tf.tidy(() => {
    const [dx, dw] = tf.grads(lossTf(p))([tf.tensor4d(p.x, p.g.xShape), tf.tensor4d(p.w, p.g.filterShape)]);
    return { dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array };
  });
}

/** Central differences in float64: exact for a quadratic loss up to cancellation (≈ ε·|L|/h). */
function centralDiff(p: Problem, wrt: 'x' | 'w', h = 1e-3): Float64Array {
  const x = Float64Array.from(p.x);
  const w = Float64Array.from(p.w);
  const v = wrt === 'x' ? x : w;
  const out = new Float64Array(v.length);
  for (let k = 0; k < v.length; k++) {
    const keep = v[k];
    v[k] = keep + h;
    const plus = lossF64(p, x, w);
    v[k] = keep - h;
    const minus = lossF64(p, x, w);
    v[k] = keep;
    out[k] = (plus - minus) / (2 * h);
  }
  return out;
}

// Stock results are taken before the override is registered (registration is once per process,
// and this file's tests run in order in one process).
let stockGradFunc: tf.GradConfig | undefined;
const stock = new Map<string, { dx: Float32Array; dw: Float32Array }>();

describe('before registerKernelOverrides', () => {
  it("tfjs's own Conv2D gradient is registered (by tfjs-layers) and runs on cpu", () => {
    stockGradFunc = tf.getGradient('Conv2D');
    expect(stockGradFunc).toBeDefined();
    for (const p of problems) stock.set(p.name, tfGrads(p));
    expect(stock.size).toBe(problems.length);
  });
});

describe('registerKernelOverrides', () => {
  it('replaces the Conv2D gradient, and a second call changes nothing (idempotent)', () => {
    registerKernelOverrides();
    const ours = tf.getGradient('Conv2D');
    expect(ours).toBeDefined();
    expect(ours).not.toBe(stockGradFunc);
    expect(ours.inputsToSave).toEqual(['x', 'filter']);
    expect(() => registerKernelOverrides()).not.toThrow();
    expect(tf.getGradient('Conv2D')).toBe(ours);
  });

  it.each(problems.map((p) => [p.name, p] as const))('gradients equal the stock cpu gradients: %s', (_name, p) => {
    const ours = tfGrads(p);
    const ref = stock.get(p.name)!;
    // ∂/∂x (a forward conv with the rotated filter for stride-1 'same', else the same
    // Conv2DBackpropInput kernel) and ∂/∂w sum the same float32 products in another order:
    // ≤ 2·n·u·Σ|terms| with n ≤ 30 terms here, ≲ 1e-5 of the largest entry; 1e-5 still catches
    // any misplaced tap or channel (those are O(1) errors).
    expect(maxAbsDiff(ours.dx, ref.dx)).toBeLessThanOrEqual(1e-5 * maxAbs(ref.dx));
    expect(maxAbsDiff(ours.dw, ref.dw)).toBeLessThanOrEqual(1e-5 * maxAbs(ref.dw));
  });

  it.each(problems.map((p) => [p.name, p] as const))(
    '∂L/∂w and ∂L/∂x match float64 central differences: %s',
    (_name, p) => {
      const ours = tfGrads(p);
      const fdW = centralDiff(p, 'w');
      const fdX = centralDiff(p, 'x');
      // The loss is quadratic, so central differences have no truncation error; their rounding
      // error is ≈ ε·|L|/h ≈ 1e-12. What remains is tfjs's float32 arithmetic (forward conv,
      // square, sums and the two backward convolutions, each a float32 sum of ≲ 50 terms of
      // size ≲ 10): ≲ 50·u·10 ≈ 3e-5 absolute per sum; 1e-4 of the largest entry (≥ 1 here)
      // bounds that while rejecting any wrong tap, stride or padding offset.
      expect(maxAbs(fdW)).toBeGreaterThan(1);
      expect(maxAbsDiff(ours.dw, fdW)).toBeLessThanOrEqual(1e-4 * maxAbs(fdW));
      expect(maxAbsDiff(ours.dx, fdX)).toBeLessThanOrEqual(1e-4 * maxAbs(fdX));
    },
  );

  it('d(Σ conv(x, w)·R)/dw equals central differences for a tiny linear loss', () => {
    const p = problems[0];
    const r = tf.tensor(p.r);
    const grad = tf.tidy(() => {
      const f = (w: tf.Tensor) => {
        const c = tf.conv2d(tf.tensor4d(p.x, p.g.xShape), w as tf.Tensor4D, 1, 'same');
        return tf.sum(tf.mul(tf.reshape(r, c.shape), c));
      };
      return tf.grad(f)(tf.tensor4d(p.w, p.g.filterShape)).dataSync();
    });
    r.dispose();
    const w = Float64Array.from(p.w);
    const x = Float64Array.from(p.x);
    const linear = (ww: Float64Array) => convDirect(x, ww, p.g).reduce((acc, c, i) => acc + c * p.r[i], 0);
    const h = 1e-3;
    for (let k = 0; k < w.length; k++) {
      const keep = w[k];
      w[k] = keep + h;
      const plus = linear(w);
      w[k] = keep - h;
      const minus = linear(w);
      w[k] = keep;
      // Linear in w: the difference quotient is exact up to ε·|L|/h ≈ 1e-12; the tfjs side is a
      // float32 sum of ≤ 16 products of size < 1: ≤ 16·u·16 ≈ 2e-5.
      expect(Math.abs(grad[k] - (plus - minus) / (2 * h))).toBeLessThanOrEqual(2e-5);
    }
  });

  it('no tensors leak around a gradient computation inside tf.tidy', () => {
    const p = problems[1];
    const x = tf.tensor4d(p.x, p.g.xShape);
    const w = tf.tensor4d(p.w, p.g.filterShape);
    const f = lossTf(p); // holds one tensor (R)
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.tidy(() => {
        const [dx, dw] = tf.grads(f)([x, w]);
        expect(dw.shape).toEqual(p.g.filterShape);
        expect(dx.shape).toEqual(p.g.xShape);
      });
      expect(tf.memory().numTensors).toBe(before);
    }
    const kept = tf.tidy(() => tf.grads(f)([x, w]));
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([...kept, x, w]);
    expect(tf.memory().numTensors).toBe(before - 2);
  });

  it('rejects dilated convolutions with a clear message', () => {
    const f = (w: tf.Tensor) =>
      tf.sum(tf.conv2d(tf.ones([1, 6, 6, 1]) as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid', 'NHWC', 2));
    expect(() => tf.tidy(() => tf.grad(f)(tf.ones([3, 3, 1, 1])))).toThrow(/dilations must be 1/);
  });
});
