import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';
import { groupNormAct, registerKernelOverrides } from '@matryoshka-ts/kernels';
import { maxAbs, maxAbsDiff, seeded } from '@matryoshka-ts/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';
import { type NativeBase, registerNativeKernels, unregisterNativeKernels } from './register.js';

// The fused GroupNorm(+modulation)(+SiLU) kernels against the same formula in tfjs ops on the
// stock cpu backend, values and all five gradients, and by finite differences.
const haveAddon = loadAddon().addon !== undefined;
if (!haveAddon && process.env.MDM_REQUIRE_NATIVE === '1')
  throw new Error('MDM_REQUIRE_NATIVE=1 but the native addon is missing');

const uniform = seeded(7);
const rand = () => uniform() * 2 - 1; // in [-1, 1)
const randoms = (n: number, scale = 1, offset = 0) => Float32Array.from({ length: n }, () => offset + scale * rand());

interface Case {
  name: string;
  shape: [number, number, number, number];
  groups: number;
  silu: boolean;
  modulated: boolean;
}
const cases: Case[] = [
  { name: 'GN only, 4 groups', shape: [2, 5, 3, 8], groups: 4, silu: false, modulated: false },
  { name: 'GN + SiLU, 1 group, batch 1', shape: [1, 4, 4, 6], groups: 1, silu: true, modulated: false },
  { name: 'GN + scale/shift + SiLU (the residual block)', shape: [3, 6, 5, 8], groups: 2, silu: true, modulated: true },
  { name: 'GN + scale/shift, one channel per group', shape: [2, 3, 3, 4], groups: 4, silu: false, modulated: true },
  { name: 'large enough for two threads', shape: [4, 16, 16, 32], groups: 8, silu: true, modulated: true },
  // 56 = 32 + 16 + 8 channels: the statistics read them in sweeps of each width; 35 pixels is odd.
  { name: '56 channels, odd pixel count', shape: [2, 5, 7, 56], groups: 7, silu: true, modulated: true },
];

function data(c: Case) {
  const [b, h, w, ch] = c.shape;
  // An offset and a spread per sample, so the normalisation has something to remove.
  return {
    x: randoms(b * h * w * ch, 3, 0.5),
    gamma: randoms(ch, 0.5, 1),
    beta: randoms(ch, 0.5),
    scale: randoms(b * ch, 0.3),
    shift: randoms(b * ch, 0.3),
    r: randoms(b * h * w * ch),
  };
}

function runCase(c: Case, d: ReturnType<typeof data>) {
  return tf.tidy(() => {
    const [b, , , ch] = c.shape;
    const inputs = [
      tf.tensor4d(d.x, c.shape),
      tf.tensor1d(d.gamma),
      tf.tensor1d(d.beta),
      tf.tensor2d(d.scale, [b, ch]),
      tf.tensor2d(d.shift, [b, ch]),
    ];
    const r = tf.tensor4d(d.r, c.shape);
    const f = (x: tf.Tensor, g: tf.Tensor, bt: tf.Tensor, s: tf.Tensor, t: tf.Tensor) =>
      groupNormAct(x as tf.Tensor4D, g, bt, {
        groups: c.groups,
        silu: c.silu,
        ...(c.modulated ? { scale: s, shift: t } : {}),
      });
    const y = f(...(inputs as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]));
    const n = c.modulated ? 5 : 3;
    const grads = tf.grads((...ts: tf.Tensor[]) =>
      tf.sum(tf.mul(r, f(ts[0], ts[1], ts[2], ts[3] ?? inputs[3], ts[4] ?? inputs[4]))),
    )(inputs.slice(0, n));
    return { y: y.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

// float32 sums over ≤ 8192 values per group: 1e-4 of the largest entry covers the different
// summation orders (the fused kernel accumulates in float64, tfjs in float32).
const close = (a: Float32Array, b: Float32Array) => maxAbsDiff(a, b) <= 1e-4 * Math.max(1, maxAbs(b));

beforeAll(() => {
  tf.env().set('IS_TEST', true);
  registerKernelOverrides();
});
afterAll(() => {
  unregisterNativeKernels('cpu');
  unregisterNativeKernels('wasm');
});

describe.skipIf(!haveAddon)('fused groupNormAct', () => {
  for (const base of ['wasm', 'cpu'] as NativeBase[])
    it.each(cases)(`${base}: values and gradients equal the tfjs-op formula: $name`, async (c) => {
      const d = data(c);
      unregisterNativeKernels('cpu');
      await tf.setBackend('cpu');
      const want = runCase(c, d);
      registerNativeKernels(base);
      await tf.setBackend(base);
      const got = runCase(c, d);
      unregisterNativeKernels(base);
      expect(close(got.y, want.y)).toBe(true);
      expect(got.grads.length).toBe(c.modulated ? 5 : 3);
      got.grads.forEach((g, i) => expect(close(g, want.grads[i]), `gradient ${i}`).toBe(true));
    });

  it('finite differences agree with the fused gradient (all five inputs at once)', async () => {
    const c = cases[2];
    const d = data(c);
    registerNativeKernels('wasm');
    await tf.setBackend('wasm');
    const [b, , , ch] = c.shape;
    const keys = ['x', 'gamma', 'beta', 'scale', 'shift'] as const;
    const loss = (v: typeof d) =>
      tf.tidy(() => {
        const y = groupNormAct(tf.tensor4d(v.x, c.shape), tf.tensor1d(v.gamma), tf.tensor1d(v.beta), {
          groups: c.groups,
          silu: true,
          scale: tf.tensor2d(v.scale, [b, ch]),
          shift: tf.tensor2d(v.shift, [b, ch]),
        }).dataSync();
        let s = 0;
        for (let i = 0; i < y.length; i++) s += d.r[i] * y[i];
        return s;
      });
    const got = runCase(c, d);
    const dirs = Object.fromEntries(keys.map((k) => [k, randoms(d[k].length)])) as Record<
      (typeof keys)[number],
      Float32Array
    >;
    const moved = (e: number) =>
      ({ ...d, ...Object.fromEntries(keys.map((k) => [k, d[k].map((v, i) => v + e * dirs[k][i])])) }) as typeof d;
    const eps = 1e-3;
    const numeric = (loss(moved(eps)) - loss(moved(-eps))) / (2 * eps);
    let analytic = 0;
    keys.forEach((k, j) => dirs[k].forEach((v, i) => (analytic += v * got.grads[j][i])));
    unregisterNativeKernels('wasm');
    // A float32 loss differenced at eps 1e-3: agreement to ~1e-3 relative.
    expect(Math.abs(numeric - analytic)).toBeLessThan(2e-3 * Math.abs(analytic) + 2e-3);
  });
});

describe.skipIf(!haveAddon)('groupNormAct with one [B, 2C] modulation tensor', () => {
  for (const base of ['wasm', 'cpu'] as NativeBase[])
    it(`${base}: equals scale and shift given apart, values and gradients (the composite on cpu too)`, async () => {
      const c = cases[cases.length - 1];
      const d = data(c);
      const [b, , , ch] = c.shape;
      const run = (packed: boolean) =>
        tf.tidy(() => {
          const x = tf.tensor4d(d.x, c.shape),
            g = tf.tensor1d(d.gamma),
            bt = tf.tensor1d(d.beta);
          const s = tf.tensor2d(d.scale, [b, ch]),
            t = tf.tensor2d(d.shift, [b, ch]),
            m = tf.concat([s, t], 1);
          const r = tf.tensor4d(d.r, c.shape);
          const f = (xx: tf.Tensor, mm: tf.Tensor) =>
            packed
              ? groupNormAct(xx as tf.Tensor4D, g, bt, { groups: c.groups, silu: true, modulation: mm })
              : groupNormAct(xx as tf.Tensor4D, g, bt, {
                  groups: c.groups,
                  silu: true,
                  scale: tf.slice(mm, [0, 0], [b, ch]),
                  shift: tf.slice(mm, [0, ch], [b, ch]),
                });
          const [dx, dm] = tf.grads((xx: tf.Tensor, mm: tf.Tensor) => tf.sum(tf.mul(r, f(xx, mm))))([x, m]);
          return [f(x, m), dx, dm].map((v) => v.dataSync() as Float32Array);
        });
      unregisterNativeKernels('cpu');
      await tf.setBackend('cpu');
      const want = run(false);
      const composite = run(true);
      registerNativeKernels(base);
      await tf.setBackend(base);
      const got = run(true);
      unregisterNativeKernels(base);
      // The composite slices the same values: identical. The fused kernel: float32 rounding (above).
      composite.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(want[i])));
      got.forEach((v, i) => expect(close(v, want[i]), `output ${i}`).toBe(true));
    });
});

describe.skipIf(!haveAddon)('GroupNorm statistics', () => {
  it('stay float64-accurate over many pixels far from zero (64 px, 8 channels, mean 100)', () => {
    // The kernel sums float32 blocks of 64 pixels into float64 totals (measured error 1.2e-5); one
    // float32 running sum over the 8,192 values of a group would be off by ~1.8e-4 here.
    const [B, P, C, G] = [2, 4096, 8, 4];
    const x = randoms(B * P * C, 1, 100);
    const y = new Float32Array(x.length);
    const ones = new Float32Array(C).fill(1);
    loadAddon().addon!.groupNormAct(x, ones, new Float32Array(C), null, null, y, [B, P, C, G, 1e-5, 0]);
    let worst = 0;
    for (let b = 0; b < B; b++)
      for (let g = 0; g < G; g++) {
        const idx: number[] = [];
        for (let p = 0; p < P; p++) for (let c = g * 2; c < g * 2 + 2; c++) idx.push((b * P + p) * C + c);
        const mean = idx.reduce((s, i) => s + x[i], 0) / idx.length;
        const rstd = 1 / Math.sqrt(idx.reduce((s, i) => s + (x[i] - mean) ** 2, 0) / idx.length + 1e-5);
        for (const i of idx) worst = Math.max(worst, Math.abs(y[i] - (x[i] - mean) * rstd));
      }
    // Normalised values reach ~1.7; float32 holds 100 ± 1 to ~4e-6, i.e. ~1e-5 after scaling by rstd.
    expect(worst).toBeLessThan(5e-5);
  });
});
