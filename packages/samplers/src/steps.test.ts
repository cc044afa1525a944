import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { shiftSchedule, squaredCosineSchedule } from '@matryoshka-ts/schedules';
import { ddimStep, ddpmStep, epsFromX0, posteriorVariance, predictX0, stepGammas } from './steps.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const base = squaredCosineSchedule();
const shifted = shiftSchedule(base, 4);
const shape: [number, number, number, number] = [2, 4, 4, 3];
const size = 2 * 4 * 4 * 3;

/** Arrays of normals (float32-representable, so the float64 references see the same inputs). */
function draws(seed: number, count: number): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => rng.normals(size));
}

function values(x: tf.Tensor): Float32Array {
  const out = x.dataSync() as Float32Array;
  x.dispose();
  return out;
}

// Tolerances: each step is a handful of float32 multiply-adds on O(1) values with coefficients
// rounded to float32 once: a few ulps of the largest term (|values| ≲ 4 here → ~1e-6).
const TOL = 2e-6;

describe('stepGammas', () => {
  it('reads γ_t and γ_s from the float32 table of the level', () => {
    expect(stepGammas(shifted, 600, 400)).toEqual({ gammaT: shifted.gammasF32[600], gammaS: shifted.gammasF32[400] });
    expect(stepGammas(base, 167, 0).gammaS).toBe(1);
  });
  it('rejects times outside the table, fractional times and steps that go up', () => {
    expect(() => stepGammas(base, 1001, 0)).toThrow(/table/);
    expect(() => stepGammas(base, 10.5, 0)).toThrow(/integer/);
    expect(() => stepGammas(base, 400, 600)).toThrow(/down/);
  });
});

describe('x̂0 from a prediction of each type', () => {
  it('recovers x0 from the true ε, x0 and v of x_t = √γ·x0 + √(1−γ)·ε', () => {
    const [x0, eps] = draws(1, 2);
    for (const gamma of [base.gammasF32[100], base.gammasF32[600], shifted.gammasF32[900]]) {
      const [a, b] = [Math.sqrt(gamma), Math.sqrt(1 - gamma)];
      const xT = Float32Array.from(x0, (v, i) => a * v + b * eps[i]);
      const truth = {
        eps,
        x0,
        v: Float32Array.from(x0, (v, i) => a * eps[i] - b * v), // v = √γ·ε − √(1−γ)·x0
      };
      tf.tidy(() => {
        const xt = tf.tensor4d(xT, shape);
        for (const type of ['eps', 'x0', 'v'] as const) {
          const got = predictX0(tf.tensor4d(truth[type], shape), xt, gamma, type).dataSync();
          // eps divides by √γ (≥ 0.05 at t = 900 shifted): float32 error grows as 1/√γ.
          const tol = type === 'eps' ? TOL / a : TOL;
          x0.forEach((v, i) => expect(Math.abs(got[i] - v), `${type} γ=${gamma} i=${i}`).toBeLessThanOrEqual(tol));
        }
        const epsHat = epsFromX0(xt, tf.tensor4d(x0, shape), gamma).dataSync();
        eps.forEach((v, i) => expect(Math.abs(epsHat[i] - v)).toBeLessThanOrEqual(TOL / b));
      });
    }
  });
});

/**
 * The posterior q(x_s | x_t, x0) by Gaussian conditioning, in float64 — derived from the joint of
 * (x_s, x_t) given x0, not from the step formula: x_s = √γ_s·x0 + √(1−γ_s)·ε_s and
 * x_t = √α·x_s + √(1−α)·ε' with α = γ_t/γ_s, so Var x_s = 1 − γ_s, Var x_t = 1 − γ_t,
 * Cov = √α·(1 − γ_s); mean = √γ_s·x0 + Cov/Var(x_t)·(x_t − √γ_t·x0), var = Var x_s − Cov²/Var x_t.
 */
function posterior(x0: number, xT: number, gammaT: number, gammaS: number): { mean: number; variance: number } {
  const alpha = gammaT / gammaS;
  const cov = Math.sqrt(alpha) * (1 - gammaS);
  return {
    mean: Math.sqrt(gammaS) * x0 + (cov / (1 - gammaT)) * (xT - Math.sqrt(gammaT) * x0),
    variance: 1 - gammaS - (cov * cov) / (1 - gammaT),
  };
}

const pairs: Array<[string, typeof base, number, number]> = [
  ['cosine 600 → 400', base, 600, 400],
  ['cosine 834 → 667', base, 834, 667],
  ['cosine 1000 → 999', base, 1000, 999],
  ['cosine-shift4 600 → 400', shifted, 600, 400],
  ['cosine-shift4 50 → 49', shifted, 50, 49],
];

describe('DDPM step = the posterior q(x_s | x_t, x0)', () => {
  for (const [name, schedule, t, s] of pairs) {
    it(`${name}: mean (z = 0 / omitted) and standard deviation √β̃ (the coefficient of z)`, () => {
      const [x0, xT, z] = draws(2, 3);
      const g = stepGammas(schedule, t, s);
      const ref = Array.from(x0, (v, i) => posterior(v, xT[i], g.gammaT, g.gammaS));
      expect(posteriorVariance(g)).toBeCloseTo(ref[0].variance, 12);
      const [withZ, withoutZ, zeroZ] = tf.tidy(() => {
        const [a, b] = [tf.tensor4d(x0, shape), tf.tensor4d(xT, shape)];
        return [ddpmStep(a, b, g, tf.tensor4d(z, shape)), ddpmStep(a, b, g), ddpmStep(a, b, g, tf.zeros(shape))].map(
          values,
        );
      });
      const sd = Math.sqrt(ref[0].variance);
      ref.forEach(({ mean }, i) => {
        expect(Math.abs(withoutZ[i] - mean), `mean ${i}`).toBeLessThanOrEqual(TOL);
        expect(zeroZ[i]).toBe(withoutZ[i]);
        expect(Math.abs(withZ[i] - (mean + sd * z[i])), `sample ${i}`).toBeLessThanOrEqual(TOL);
      });
    });
  }

  it('lands on x̂0 at s = 0 (γ_s = 1, β̃ = 0)', () => {
    const [x0, xT, z] = draws(3, 3);
    const g = stepGammas(base, 167, 0);
    expect(posteriorVariance(g)).toBe(0);
    const got = tf.tidy(() =>
      values(ddpmStep(tf.tensor4d(x0, shape), tf.tensor4d(xT, shape), g, tf.tensor4d(z, shape))),
    );
    x0.forEach((v, i) => expect(Math.abs(got[i] - v)).toBeLessThanOrEqual(TOL));
  });
});

describe('DDIM(η) step', () => {
  for (const [name, schedule, t, s] of pairs) {
    it(`${name}: η = 1 has the posterior's mean and variance β̃ (= DDPM); η = 0 is deterministic`, () => {
      const [x0, xT, z] = draws(4, 3);
      const g = stepGammas(schedule, t, s);
      const ref = Array.from(x0, (v, i) => posterior(v, xT[i], g.gammaT, g.gammaS));
      const sd = Math.sqrt(ref[0].variance);
      const [eta1Mean, eta1, eta0, eta0z] = tf.tidy(() => {
        const [a, b, zz] = [tf.tensor4d(x0, shape), tf.tensor4d(xT, shape), tf.tensor4d(z, shape)];
        return [ddimStep(a, b, g, 1), ddimStep(a, b, g, 1, zz), ddimStep(a, b, g, 0), ddimStep(a, b, g, 0, zz)].map(
          values,
        );
      });
      ref.forEach(({ mean }, i) => {
        // Rounding: the ε̂ coefficient √(1−γ_s−β̃) cancels against the x_t term; ε̂ carries 1/√(1−γ_t).
        expect(Math.abs(eta1Mean[i] - mean), `mean ${i}`).toBeLessThanOrEqual(4 * TOL);
        expect(Math.abs(eta1[i] - (mean + sd * z[i])), `sample ${i}`).toBeLessThanOrEqual(4 * TOL);
        expect(eta0z[i]).toBe(eta0[i]);
        // η = 0: x_s = √γ_s·x̂0 + √(1−γ_s)·ε̂ with ε̂ = (x_t − √γ_t·x̂0)/√(1−γ_t).
        const epsHat = (xT[i] - Math.sqrt(g.gammaT) * x0[i]) / Math.sqrt(1 - g.gammaT);
        expect(
          Math.abs(eta0[i] - (Math.sqrt(g.gammaS) * x0[i] + Math.sqrt(1 - g.gammaS) * epsHat)),
          `η=0 ${i}`,
        ).toBeLessThanOrEqual(4 * TOL);
      });
    });
  }

  it('η = 0.5 scales the noise by η·√β̃ and the ε̂ term by √(1−γ_s−η²β̃)', () => {
    const [x0, xT, z] = draws(6, 3);
    const g = stepGammas(base, 600, 400);
    const bt = posteriorVariance(g);
    const got = tf.tidy(() =>
      values(ddimStep(tf.tensor4d(x0, shape), tf.tensor4d(xT, shape), g, 0.5, tf.tensor4d(z, shape))),
    );
    x0.forEach((v, i) => {
      const epsHat = (xT[i] - Math.sqrt(g.gammaT) * v) / Math.sqrt(1 - g.gammaT);
      const want = Math.sqrt(g.gammaS) * v + Math.sqrt(1 - g.gammaS - 0.25 * bt) * epsHat + 0.5 * Math.sqrt(bt) * z[i];
      expect(Math.abs(got[i] - want)).toBeLessThanOrEqual(4 * TOL);
    });
  });

  it('rejects a negative η', () => {
    tf.tidy(() => {
      expect(() => ddimStep(tf.zeros(shape), tf.zeros(shape), stepGammas(base, 2, 1), -0.1)).toThrow(/eta/);
    });
  });
});

describe('tensor hygiene', () => {
  it('the step functions leave no tensors behind', () => {
    const [x0, xT, z] = draws(7, 3);
    const [a, b, zz] = [tf.tensor4d(x0, shape), tf.tensor4d(xT, shape), tf.tensor4d(z, shape)];
    const start = tf.memory().numTensors;
    const g = stepGammas(base, 600, 400);
    for (const type of ['eps', 'x0', 'v'] as const) predictX0(a, b, g.gammaT, type).dispose();
    epsFromX0(b, a, g.gammaT).dispose();
    ddpmStep(a, b, g, zz).dispose();
    ddimStep(a, b, g, 0.7, zz).dispose();
    expect(tf.memory().numTensors).toBe(start);
    tf.dispose([a, b, zz]);
  });
});
