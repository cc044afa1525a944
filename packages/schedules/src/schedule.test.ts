import { describe, expect, it } from 'vitest';
import { gammaOfLogSnr, gammasFromBetas, logSnrOf, makeSchedule } from './schedule.js';

describe('logSnrOf / gammaOfLogSnr', () => {
  it('are inverses of each other (sigmoid and logit), to a few float64 ulps', () => {
    for (const l of [-30, -12.5, -5, -1, -1e-3, 0, 1e-3, 1, 5, 12.5, 30]) {
      // Rounding ᾱ to float64 (≤ ε/2 absolute) moves logit(ᾱ) by ≈ ε/2 / (ᾱ(1−ᾱ)) ≈ ε·e^λ/2 for
      // λ ≫ 0 (e.g. 1e-3 at λ = 30): the inherent conditioning, not a bug. Allow 2ε·max(1, e^λ).
      expect(Math.abs(logSnrOf(gammaOfLogSnr(l)) - l)).toBeLessThanOrEqual(
        2 * Number.EPSILON * Math.max(1, Math.exp(l)),
      );
    }
  });

  it('match the closed forms log(ᾱ/(1−ᾱ)) and 1/(1+e^−λ)', () => {
    expect(logSnrOf(0.5)).toBe(0);
    expect(logSnrOf(0.8)).toBeCloseTo(Math.log(4), 14);
    expect(gammaOfLogSnr(0)).toBe(0.5);
    expect(gammaOfLogSnr(Math.log(3))).toBeCloseTo(0.75, 15);
    expect(gammaOfLogSnr(-Math.log(3))).toBeCloseTo(0.25, 15);
  });

  it('gammaOfLogSnr stays finite and in [0, 1] for extreme log SNR (no exp overflow)', () => {
    expect(gammaOfLogSnr(1000)).toBe(1);
    expect(gammaOfLogSnr(-1000)).toBe(0);
    expect(Number.isNaN(gammaOfLogSnr(-800))).toBe(false);
  });
});

describe('gammasFromBetas', () => {
  it('prepends ᾱ_0 = 1 and multiplies (1 − β) cumulatively', () => {
    const g = gammasFromBetas([0.1, 0.2, 0.5]);
    expect(g).toBeInstanceOf(Float64Array);
    expect(g.length).toBe(4);
    expect(g[0]).toBe(1);
    // exp(Σ log) vs the direct product: a few ulps.
    expect(g[1]).toBeCloseTo(0.9, 15);
    expect(g[2]).toBeCloseTo(0.9 * 0.8, 15);
    expect(g[3]).toBeCloseTo(0.9 * 0.8 * 0.5, 15);
  });

  it('an empty β list gives just [1]', () => {
    expect(Array.from(gammasFromBetas([]))).toEqual([1]);
  });
});

describe('makeSchedule', () => {
  const s = makeSchedule('test', Float64Array.from([1, 0.75, 0.5, 0.25]), (t) => 1 - 0.75 * t);

  it('derives steps, the float32 table and logSnr from the continuous ᾱ', () => {
    expect(s.name).toBe('test');
    expect(s.steps).toBe(3);
    expect(Array.from(s.gammasF32)).toEqual([1, 0.75, 0.5, 0.25]);
    expect(s.gamma(0)).toBe(1);
    expect(s.gamma(1)).toBe(0.25);
    expect(s.logSnr(2 / 3)).toBeCloseTo(0, 14); // ᾱ = 0.5
    expect(s.logSnr(1)).toBeCloseTo(-Math.log(3), 14);
  });

  it('keeps an explicitly supplied float32 table', () => {
    const f32 = Float32Array.from([1, 0.5]);
    expect(makeSchedule('x', Float64Array.from([1, 0.6]), () => 1, f32).gammasF32).toBe(f32);
  });

  it('rejects continuous t outside [0, 1] (and NaN) with a RangeError', () => {
    for (const t of [-1e-9, 1 + 1e-9, -1, 2, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => s.gamma(t)).toThrow(RangeError);
      expect(() => s.logSnr(t)).toThrow(RangeError);
    }
    expect(() => s.gamma(1.5)).toThrow(/\[0, 1\].*1\.5/);
  });
});
