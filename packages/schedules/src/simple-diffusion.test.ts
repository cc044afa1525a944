import { execFileSync } from 'node:child_process';
import { findPython } from '@matryoshka-ts/test-utils';
import { describe, expect, it } from 'vitest';
import { linearSchedule, logSnrCosineSchedule, squaredCosineSchedule } from './families.js';
import { type Schedule, logSnrOf } from './schedule.js';
import { shiftSchedule } from './shift.js';
import {
  fractionTableTime,
  linspaceTableTime,
  logSnrInterpolatedSchedule,
  logSnrShift,
  logSnrShiftSchedule,
} from './simple-diffusion.js';

const EPS = Number.EPSILON;
const LN2 = Math.LN2;

/** simple diffusion's base: the cosine log-SNR schedule truncated to [−15, 15] (the paper's pseudocode). */
const paperBase = logSnrCosineSchedule(1000, -15, 15);
const cosine = squaredCosineSchedule();
const linear = linearSchedule();

/**
 * How far a recovered log-SNR offset logit(ᾱ') − logit(ᾱ) may stray from the exact offset s, where
 * λ' = λ + s is the shifted log SNR. The base λ cancels exactly (test and code compute it from the
 * same ᾱ with the same logSnrOf). What remains: rounding λ + s (ε·|λ'|), sigmoid (≈ 3ε relative
 * in ᾱ'), then logit(ᾱ'), whose 1 − ᾱ' turns ᾱ''s relative error into 3ε·SNR' (SNR' = e^λ' — the
 * inherent conditioning of logit near ᾱ' = 1) plus ε·|log| terms; and the offset's own rounding
 * (ε·|s|). A factor 4 over the sum of these covers the constant and the test's own subtraction.
 */
function offsetBound(lambdaShifted: number, offset: number): number {
  return 4 * EPS * (4 + 3 * Math.exp(lambdaShifted) + 2 * Math.abs(lambdaShifted) + Math.abs(offset));
}

/** Entries 1…N (entry 0 is ᾱ = 1, log SNR = +∞). */
function* entries(s: Schedule): Generator<number> {
  for (let k = 1; k <= s.steps; k++) yield k;
}

/** 201 points of (0, 1]: t = 0 is skipped because the squared cosine has ᾱ(0) = 1 there (λ = +∞). */
const TIMES = Array.from({ length: 200 }, (_, i) => (i + 1) / 200).concat([1e-6]);

describe('logSnrShift', () => {
  it('is 2·ln(reference/d) (§3.1), 0 at the reference resolution', () => {
    expect(logSnrShift(64)).toBe(0);
    expect(logSnrShift(32, 32)).toBe(0);
    // ln of an exact power of two is correctly rounded to within an ulp or two: 1e-15.
    expect(logSnrShift(256)).toBeCloseTo(-4 * LN2, 15);
    expect(logSnrShift(32)).toBeCloseTo(2 * LN2, 15);
    expect(logSnrShift(512, 32)).toBeCloseTo(-8 * LN2, 14);
    expect(logSnrShift(128, 256)).toBeCloseTo(2 * LN2, 15);
  });

  it('rejects non-positive and non-finite resolutions', () => {
    for (const bad of [0, -64, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => logSnrShift(bad)).toThrow(RangeError);
      expect(() => logSnrShift(64, bad)).toThrow(RangeError);
    }
  });
});

describe('logSnrShiftSchedule', () => {
  const bases: [string, Schedule][] = [
    ['cosine', cosine],
    ['paper cosine-logsnr ±15', paperBase],
    ['linear', linear],
  ];
  const cases = bases.flatMap(([label, base]) => [32, 128, 256, 512, 1024].map((d) => [label, d, base] as const));

  it.each(cases)('%s at d = %d: table log SNR moves by exactly 2·ln(64/d) at every entry', (_, d, base) => {
    const s = logSnrShiftSchedule(base, d);
    const shift = 2 * Math.log(64 / d);
    for (const k of entries(s)) {
      const lambda = logSnrOf(base.gammas[k]);
      const err = Math.abs(logSnrOf(s.gammas[k]) - lambda - shift);
      expect(err, `entry ${k}`).toBeLessThanOrEqual(offsetBound(lambda + shift, shift));
    }
  });

  it.each(cases)('%s at d = %d: continuous log SNR moves by 2·ln(64/d) at 201 times', (_, d, base) => {
    const s = logSnrShiftSchedule(base, d);
    const shift = 2 * Math.log(64 / d);
    for (const t of TIMES) {
      const lambda = base.logSnr(t);
      expect(Math.abs(s.logSnr(t) - lambda - shift), `t = ${t}`).toBeLessThanOrEqual(
        offsetBound(lambda + shift, shift),
      );
    }
  });

  it('keeps ᾱ_0 = 1, stays strictly decreasing, and moves every entry the right way', () => {
    for (const [base, d] of [
      [cosine, 256],
      [paperBase, 1024],
      [linear, 32],
    ] as const) {
      const s = logSnrShiftSchedule(base, d);
      expect(s.steps).toBe(1000);
      expect(s.gammas.length).toBe(1001);
      expect(s.gammas[0]).toBe(1);
      expect(s.gammasF32[0]).toBe(1);
      if (base.gamma(0) === 1) expect(s.gamma(0)).toBe(1); // λ = +∞ stays +∞
      for (let k = 1; k <= 1000; k++) {
        expect(s.gammas[k]).toBeLessThan(s.gammas[k - 1]);
        // d > 64: more noise (smaller ᾱ); d < 64: less noise.
        if (d > 64) expect(s.gammas[k]).toBeLessThan(base.gammas[k]);
        else expect(s.gammas[k]).toBeGreaterThan(base.gammas[k]);
      }
    }
  });

  it('float32 table is the float64 table rounded to float32 (no official float32 reference)', () => {
    const s = logSnrShiftSchedule(cosine, 512);
    expect(Array.from(s.gammasF32)).toEqual(Array.from(s.gammas, (g) => Math.fround(g)));
  });

  it('d equal to the reference returns the base schedule itself', () => {
    expect(logSnrShiftSchedule(cosine, 64)).toBe(cosine);
    expect(logSnrShiftSchedule(paperBase, 32, 32)).toBe(paperBase);
    expect(logSnrShiftSchedule(linear, 128, 128)).toBe(linear);
  });

  it('closed forms on the paper base: log SNR(½) = 2·ln(64/d); endpoints ±15 + 2·ln(64/d)', () => {
    // The base has λ(½) = 0 exactly up to atan/tan/log rounding (≤ 1e-15 here); near λ = 0 the
    // sigmoid/logit round trip is well conditioned, so 1e-13.
    expect(logSnrShiftSchedule(paperBase, 256).logSnr(0.5)).toBeCloseTo(-4 * LN2, 13);
    expect(logSnrShiftSchedule(paperBase, 512).logSnr(0.5)).toBeCloseTo(-6 * LN2, 13);
    expect(logSnrShiftSchedule(paperBase, 32).logSnr(0.5)).toBeCloseTo(2 * LN2, 13);
    // At λ = 15 the base's own logit(sigmoid(15)) carries ≈ ε·e^15 ≈ 7e-10 (the conditioning of
    // logit near ᾱ = 1), so the endpoint checks allow that plus the offset bound.
    for (const d of [32, 256, 1024]) {
      const s = logSnrShiftSchedule(paperBase, d);
      const shift = 2 * Math.log(64 / d);
      const baseErr = 4 * EPS * Math.exp(15);
      expect(Math.abs(s.logSnr(0) - (15 + shift))).toBeLessThanOrEqual(baseErr + offsetBound(15 + shift, shift));
      expect(Math.abs(s.logSnr(1) - (-15 + shift))).toBeLessThanOrEqual(1e-12);
    }
  });

  it('equals the ml-mdm shift SNR / (d/64)² (shiftSchedule) up to rounding', () => {
    // Same ᾱ' = ᾱ/(ᾱ + f(1 − ᾱ)), f = (d/64)², by two routes: logit + shift + sigmoid here, SNR
    // division there. The logit route's λ carries ≲ ε·(|λ| + 3) absolute error and ᾱ' responds to λ
    // with elasticity 1 − ᾱ' ≤ 1, so relative differences stay ≲ 30ε ≈ 7e-15 (|λ| ≤ ~25): 1e-13.
    for (const base of [cosine, linear]) {
      const ours = logSnrShiftSchedule(base, 256);
      const mlMdm = shiftSchedule(base, 16);
      for (let k = 0; k <= 1000; k++) {
        expect(Math.abs(ours.gammas[k] - mlMdm.gammas[k]) / mlMdm.gammas[k]).toBeLessThanOrEqual(1e-13);
      }
      for (const t of TIMES)
        expect(Math.abs(ours.gamma(t) - mlMdm.gamma(t)) / mlMdm.gamma(t)).toBeLessThanOrEqual(1e-13);
    }
  });

  it('names the result <base>-res<d>, with -ref<r> when the reference is not 64', () => {
    expect(logSnrShiftSchedule(cosine, 256).name).toBe('cosine-res256');
    expect(logSnrShiftSchedule(cosine, 256, 32).name).toBe('cosine-res256-ref32');
    expect(logSnrShiftSchedule(paperBase, 512).name).toBe('cosine-logsnr-res512');
  });

  it('rejects bad resolutions, and continuous t outside [0, 1]', () => {
    expect(() => logSnrShiftSchedule(cosine, 0)).toThrow(RangeError);
    expect(() => logSnrShiftSchedule(cosine, 256, Number.NaN)).toThrow(RangeError);
    expect(() => logSnrShiftSchedule(cosine, 256).gamma(1.5)).toThrow(RangeError);
    expect(() => logSnrShiftSchedule(cosine, 256).logSnr(-0.1)).toThrow(RangeError);
  });
});

describe('logSnrInterpolatedSchedule', () => {
  // The paper's 512 px example: from the 32 px shift at t = 1 to the 256 px shift at t = 0.
  const interp = logSnrInterpolatedSchedule(paperBase, 512, 32, 256, linspaceTableTime);
  const shiftLow = logSnrShiftSchedule(paperBase, 512, 32);
  const shiftHigh = logSnrShiftSchedule(paperBase, 512, 256);

  it('continuous endpoints are the shifted schedules: high at t = 0, low at t = 1 (bit for bit)', () => {
    // The weights 0 and 1 make t·s_low + (1 − t)·s_high exactly s_high and s_low.
    expect(interp.gamma(0)).toBe(shiftHigh.gamma(0));
    expect(interp.gamma(1)).toBe(shiftLow.gamma(1));
    const c = logSnrInterpolatedSchedule(cosine, 1024, 32, 512);
    expect(c.gamma(1)).toBe(logSnrShiftSchedule(cosine, 1024, 32).gamma(1));
    expect(c.gamma(0)).toBe(1);
  });

  it('table endpoints are the shifted tables: first entry (τ = 0) high, last entry (t = 1) low', () => {
    expect(interp.gammas[0]).toBe(1);
    expect(interp.gammasF32[0]).toBe(1);
    expect(interp.gammas[1]).toBe(shiftHigh.gammas[1]);
    expect(interp.gammas[1000]).toBe(shiftLow.gammas[1000]);
    const c = logSnrInterpolatedSchedule(cosine, 1024, 32, 512);
    expect(c.gammas[1000]).toBe(logSnrShiftSchedule(cosine, 1024, 32).gammas[1000]);
  });

  it('every table entry equals the continuous schedule at its time (linspace τ for the log-SNR cosine)', () => {
    // linspaceTableTime reproduces the base table's τ bit for bit, so both go through identical
    // arithmetic: exact equality.
    for (const k of entries(interp))
      expect(interp.gammas[k], `entry ${k}`).toBe(interp.gamma(linspaceTableTime(k, 1000)));
  });

  it('table log SNR is logSNR + t·2·ln(low/d) + (1 − t)·2·ln(high/d) at every entry', () => {
    const sLow = 2 * Math.log(32 / 512);
    const sHigh = 2 * Math.log(256 / 512);
    for (const [s, base, time] of [
      [interp, paperBase, linspaceTableTime],
      [logSnrInterpolatedSchedule(cosine, 512, 32, 256), cosine, fractionTableTime],
    ] as const) {
      for (const k of entries(s)) {
        const t = time(k, 1000);
        const offset = t * sLow + (1 - t) * sHigh;
        const lambda = logSnrOf(base.gammas[k]);
        const err = Math.abs(logSnrOf(s.gammas[k]) - lambda - offset);
        expect(err, `entry ${k}`).toBeLessThanOrEqual(offsetBound(lambda + offset, offset));
      }
    }
  });

  it("continuous log SNR is the paper's t·logSNR_low(t) + (1 − t)·logSNR_high(t)", () => {
    for (const t of TIMES) {
      const low = shiftLow.logSnr(t);
      const high = shiftHigh.logSnr(t);
      const expected = t * low + (1 - t) * high;
      // Three schedules each recovered through logit: three offset bounds (weights ≤ 1).
      const tol = offsetBound(low, 0) + offsetBound(high, 0) + offsetBound(expected, 0);
      expect(Math.abs(interp.logSnr(t) - expected), `t = ${t}`).toBeLessThanOrEqual(tol);
    }
  });

  it('closed form on the paper base at t = ½: 0 + ½·2·ln(32/512) + ½·2·ln(256/512) = −5·ln 2', () => {
    // λ(½) = 0 for the symmetric ±15 base; the round trip near λ = 0 is well conditioned: 1e-13.
    expect(interp.logSnr(0.5)).toBeCloseTo(-5 * LN2, 13);
  });

  it('is strictly decreasing, and lies between its two shifted schedules', () => {
    for (let k = 1; k <= 1000; k++) {
      expect(interp.gammas[k]).toBeLessThan(interp.gammas[k - 1]);
      expect(interp.gammas[k]).toBeGreaterThanOrEqual(shiftLow.gammas[k]);
      expect(interp.gammas[k]).toBeLessThanOrEqual(shiftHigh.gammas[k]);
    }
  });

  it('high = d makes the noise-free end the unshifted base', () => {
    // ml-mdm's ±5 cosine keeps logit well conditioned (e^5·ε ≈ 3e-14): 1e-12.
    const base = logSnrCosineSchedule();
    const s = logSnrInterpolatedSchedule(base, 256, 32, 256, linspaceTableTime);
    expect(s.logSnr(0)).toBeCloseTo(base.logSnr(0), 12);
    expect(s.logSnr(1)).toBeCloseTo(base.logSnr(1) + 2 * Math.log(32 / 256), 12);
  });

  it('low = high is the plain shift; low = high = d is the base itself', () => {
    // t·s + (1 − t)·s differs from s by ≤ 2 ulps of |s| ≈ 2e-15; ᾱ' moves by at most that
    // relative (elasticity 1 − ᾱ' ≤ 1), plus a rounding or two: 1e-14.
    const both = logSnrInterpolatedSchedule(cosine, 256, 128, 128);
    const plain = logSnrShiftSchedule(cosine, 256, 128);
    for (let k = 0; k <= 1000; k++) {
      expect(Math.abs(both.gammas[k] - plain.gammas[k]) / plain.gammas[k]).toBeLessThanOrEqual(1e-14);
    }
    expect(logSnrInterpolatedSchedule(cosine, 256, 256, 256)).toBe(cosine);
  });

  it('float32 table is the float64 table rounded; names <base>-res<d>-interp<low>-<high>', () => {
    expect(Array.from(interp.gammasF32)).toEqual(Array.from(interp.gammas, (g) => Math.fround(g)));
    expect(interp.name).toBe('cosine-logsnr-res512-interp32-256');
    expect(logSnrInterpolatedSchedule(cosine, 1024, 32, 512).name).toBe('cosine-res1024-interp32-512');
  });

  it('rejects low > high and bad resolutions', () => {
    expect(() => logSnrInterpolatedSchedule(cosine, 512, 256, 32)).toThrow(RangeError);
    expect(() => logSnrInterpolatedSchedule(cosine, 512, 0, 32)).toThrow(RangeError);
    expect(() => logSnrInterpolatedSchedule(cosine, Number.NaN, 32, 256)).toThrow(RangeError);
  });
});

describe('table times', () => {
  it('fraction: k/N; linspace: 0, then τ = (k − 1)/(N − 1) for entries 1…N', () => {
    expect(fractionTableTime(0, 1000)).toBe(0);
    expect(fractionTableTime(250, 1000)).toBe(0.25);
    expect(fractionTableTime(1000, 1000)).toBe(1);
    expect(linspaceTableTime(0, 1000)).toBe(0);
    expect(linspaceTableTime(1, 1000)).toBe(0);
    expect(linspaceTableTime(1000, 1000)).toBe(1);
    expect(linspaceTableTime(500, 1000)).toBeCloseTo(499 / 999, 15);
    expect(linspaceTableTime(1, 1)).toBe(1);
  });

  it('linspaceTableTime reproduces the log-SNR cosine table exactly', () => {
    for (let k = 1; k <= 1000; k++) expect(paperBase.gammas[k]).toBe(paperBase.gamma(linspaceTableTime(k, 1000)));
  });
});

describe("against numpy (an independent float64 evaluation of the paper's pseudocode)", () => {
  // numpy evaluates λ(τ) = −2·ln tan(a·τ + b), adds the shifts in log-SNR space once (no logit round
  // trip) and applies a stable sigmoid. See the bound in the test below.
  const script = `
import json, math
import numpy as np
N = 1000
b = math.atan(math.exp(-0.5 * 15)); a = math.atan(math.exp(-0.5 * -15)) - b
tau = np.linspace(0, 1, N)
lam = -2 * np.log(np.tan(a * tau + b))
sig = lambda x: np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))
shift = lambda d, ref: 2 * math.log(ref / d)
shifted = sig(lam + shift(256, 64))
interp = sig(tau * (lam + shift(512, 32)) + (1 - tau) * (lam + shift(512, 256)))
print(json.dumps({"shifted": shifted.tolist(), "interp": interp.tolist(), "lam": lam.tolist()}))
`;
  const python = findPython(['numpy']);
  const ref: { shifted: number[]; interp: number[]; lam: number[] } | undefined = python
    ? JSON.parse(execFileSync(python, ['-c', script], { encoding: 'utf8', timeout: 60_000 }))
    : undefined;

  it.for([
    ['shifted to 256 px', () => logSnrShiftSchedule(paperBase, 256), 'shifted', 2 * Math.log(64 / 256)],
    [
      'interpolated 32 → 256 at 512 px',
      () => logSnrInterpolatedSchedule(paperBase, 512, 32, 256, linspaceTableTime),
      'interp',
      2 * Math.log(32 / 512),
    ],
  ] as const)('%s: every table entry within the round-off bound', ([, make, key, mostNegativeShift], ctx) => {
    if (!ref) ctx.skip('python3 with numpy is not available; the numpy reference check is skipped');
    const s = make();
    // Bound, relative in ᾱ': our λ comes from ᾱ = sigmoid(λ) by logit, which near ᾱ = 1 carries
    // ≈ 2ε·e^λ (λ ≤ 15); ᾱ' responds with elasticity 1 − ᾱ' = 1/(1 + e^{λ+s}), leaving
    // ≈ 2ε·e^λ/(1 + e^{λ+s}) ≤ 2ε·e^{−s}. numpy's and V8's tan/log/exp differ by an ulp or so:
    // ≲ 8ε·(|λ| + 2) in λ, again passed on with elasticity ≤ 1. Plus a few roundings of ᾱ'.
    for (let k = 1; k <= 1000; k++) {
      const lam = ref!.lam[k - 1];
      const bound = EPS * (4 * Math.exp(-mostNegativeShift) + 8 * (Math.abs(lam) + 2) + 8);
      const expected = ref![key][k - 1];
      expect(Math.abs(s.gammas[k] - expected) / expected, `entry ${k}`).toBeLessThanOrEqual(bound);
    }
  });
});
