import { describe, expect, it } from 'vitest';
import { linearSchedule, squaredCosineSchedule } from './families.js';
import { logSnrOf } from './schedule.js';
import { shiftFactor, shiftSchedule } from './shift.js';

const base = squaredCosineSchedule();
const U32 = 2 ** -24; // unit roundoff of float32

describe('shiftFactor', () => {
  it('is scale^power', () => {
    expect(shiftFactor(1)).toBe(1);
    expect(shiftFactor(4)).toBe(4);
    expect(shiftFactor(4, 2)).toBe(16);
    expect(shiftFactor(16, 2)).toBe(256);
  });

  it('rejects scales below 1 and NaN', () => {
    expect(() => shiftFactor(0.5)).toThrow(RangeError);
    expect(() => shiftFactor(Number.NaN)).toThrow(RangeError);
  });
});

describe('shiftSchedule', () => {
  it.each([2, 4, 16, 256])('lowers log SNR by exactly ln(%d) along the float64 table', (factor) => {
    const s = shiftSchedule(base, factor);
    // Away from the endpoints (ᾱ_0 = 1 has infinite log SNR). The float64 shift rounds a few
    // times; logit(ᾱ') amplifies ᾱ' rounding by 1/(1−ᾱ') ≤ 1 + SNR' ≲ 3e4 here: ≲ 1e-11 error,
    // well inside 1e-9.
    for (let i = 1; i < 1000; i++) {
      expect(Math.abs(logSnrOf(s.gammas[i]) - (logSnrOf(base.gammas[i]) - Math.log(factor)))).toBeLessThanOrEqual(1e-9);
    }
  });

  it('continuous log SNR is lowered by ln(factor) too', () => {
    const s = shiftSchedule(base, 16);
    for (const t of [0.01, 0.2, 0.5, 0.8, 0.99]) expect(s.logSnr(t)).toBeCloseTo(base.logSnr(t) - Math.log(16), 9);
  });

  it('keeps ᾱ_0 = 1 in both tables, and stays strictly decreasing', () => {
    for (const factor of [4, 256]) {
      const s = shiftSchedule(base, factor);
      expect(s.gammas[0]).toBe(1);
      expect(s.gammasF32[0]).toBe(1);
      expect(s.gammas.length).toBe(1001);
      for (let i = 1; i <= 1000; i++) {
        expect(s.gammas[i]).toBeLessThan(s.gammas[i - 1]);
        expect(s.gammas[i]).toBeLessThan(base.gammas[i]);
      }
    }
  });

  it('a factor ≤ 1 returns the same schedule object', () => {
    expect(shiftSchedule(base, 1)).toBe(base);
    expect(shiftSchedule(base, 0.5)).toBe(base);
    expect(shiftSchedule(base, Number.NaN)).toBe(base);
  });

  it('names the result <base>-shift<factor>', () => {
    expect(shiftSchedule(base, 4).name).toBe('cosine-shift4');
    expect(shiftSchedule(linearSchedule(), 2.5).name).toBe('linear-shift2.5');
    expect(shiftSchedule(base, 4).steps).toBe(1000);
  });

  it('float32 table (factor 4) is within 1e-6 relative of the float64 one', () => {
    // Error analysis: the float32 table starts from fl32(ᾱ) (≤ u relative) and rounds 5 times.
    // ᾱ' = h(ᾱ) = ᾱ/(ᾱ + f(1−ᾱ)) has elasticity f/(ᾱ + f(1−ᾱ)) ≤ f, so the input error grows by
    // at most f = 4 near ᾱ ≈ 1: ≤ (4 + 5)·u ≈ 5.4e-7 < 1e-6.
    const s = shiftSchedule(base, 4);
    for (let i = 0; i <= 1000; i++) {
      expect(Math.abs(s.gammasF32[i] - s.gammas[i]) / s.gammas[i]).toBeLessThanOrEqual(1e-6);
    }
  });

  it.each([16, 256])('float32 table (factor %d) is within the float32 error bound of the float64 one', (f) => {
    // Same analysis, per entry: (elasticity + 6)·u, elasticity = f/(ᾱ + f(1−ᾱ)). Near ᾱ ≈ 1 the
    // float32 rounding of ᾱ is amplified by up to f, so a flat 1e-6 cannot hold for large f.
    const s = shiftSchedule(base, f);
    for (let i = 1; i <= 1000; i++) {
      const g = base.gammas[i];
      const bound = (f / (g + f * (1 - g)) + 6) * U32;
      expect(Math.abs(s.gammasF32[i] - s.gammas[i]) / s.gammas[i]).toBeLessThanOrEqual(bound);
    }
  });

  it('float32 table repeats the float32 arithmetic step by step (fl32 at each operation)', () => {
    const s = shiftSchedule(base, 16);
    const f = Math.fround(16);
    for (const i of [1, 2, 100, 500, 999, 1000]) {
      const g = base.gammasF32[i];
      const oneMinus = Math.fround(1 - g);
      const snr = Math.fround(Math.fround(g / oneMinus) / f);
      const inv = Math.fround(1 / snr);
      expect(s.gammasF32[i]).toBe(Math.fround(1 / Math.fround(1 + inv)));
    }
  });

  it('continuous gamma rejects t outside [0, 1]', () => {
    const s = shiftSchedule(base, 4);
    expect(() => s.gamma(-0.1)).toThrow(RangeError);
    expect(() => s.logSnr(1.1)).toThrow(RangeError);
  });
});
