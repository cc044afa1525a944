import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { linearSchedule, logSnrCosineSchedule, squaredCosineSchedule } from './families.js';
import { type Schedule, logSnrOf } from './schedule.js';
import { shiftSchedule } from './shift.js';

/** α = √ᾱ and log SNR of the discrete table at index round(t·N), as the official code reads it. */
function atTable(s: Schedule, t: number): { alpha: number; logSnr: number } {
  const g = s.gammas[Math.round(t * s.steps)];
  return { alpha: Math.sqrt(g), logSnr: logSnrOf(g) };
}

/**
 * Reference numbers are printed with 4 decimals (α) or 3 decimals (log SNR), so a correct value
 * lies within half a unit of the last printed digit: 5e-5 and 5e-4. We allow 5e-4 for both, as
 * the brief states, which still pins each number to its printed digits ± one rounding step.
 */
const TOL = 5e-4;

function expectRow(s: Schedule, t: number, alpha: number, logSnr: number): void {
  const v = atTable(s, t);
  expect(Math.abs(v.alpha - alpha), `α at t=${t}: ${v.alpha} vs ${alpha}`).toBeLessThanOrEqual(TOL);
  expect(Math.abs(v.logSnr - logSnr), `log SNR at t=${t}: ${v.logSnr} vs ${logSnr}`).toBeLessThanOrEqual(TOL);
}

/** iDDPM's un-normalised ᾱ(τ), written independently of the source. */
const cosAbar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;

describe('squaredCosineSchedule', () => {
  const s = squaredCosineSchedule();

  it('has 1001 entries, float64 and float32, starting at ᾱ_0 = 1', () => {
    expect(s.name).toBe('cosine');
    expect(s.steps).toBe(1000);
    expect(s.gammas).toBeInstanceOf(Float64Array);
    expect(s.gammas.length).toBe(1001);
    expect(s.gammasF32).toBeInstanceOf(Float32Array);
    expect(s.gammasF32.length).toBe(1001);
    expect(s.gammas[0]).toBe(1);
    expect(s.gammasF32[0]).toBe(1);
  });

  it('is strictly decreasing and positive', () => {
    for (let i = 1; i <= 1000; i++) {
      expect(s.gammas[i]).toBeLessThan(s.gammas[i - 1]);
      expect(s.gammas[i]).toBeGreaterThan(0);
    }
  });

  it('caps β at 0.999, and only the last step hits the cap', () => {
    // β_i = 1 − ᾱ_i/ᾱ_{i−1}. The table is exp of a running sum of logs, so the recovered ratio
    // carries ≈ ε·|Σ log| ≈ 2e-16·13 ≈ 3e-15 relative error; 1e-12 leaves ample room.
    const betas: number[] = [];
    for (let i = 1; i <= 1000; i++) betas.push(1 - s.gammas[i] / s.gammas[i - 1]);
    for (const b of betas) {
      expect(b).toBeGreaterThan(0);
      expect(b).toBeLessThanOrEqual(0.999 + 1e-12);
    }
    expect(Math.abs(betas[999] - 0.999)).toBeLessThanOrEqual(1e-12);
    // Uncapped, the last β would be 1 − ᾱ(1)/ᾱ(0.999) = 1 − cos²(π/2) ≈ 1.
    expect(1 - cosAbar(1) / cosAbar(0.999)).toBeGreaterThan(0.999);
    expect(betas.filter((b) => b > 0.999 - 1e-9).length).toBe(1);
    // β_i increases monotonically for the squared cosine.
    for (let i = 1; i < 1000; i++) expect(betas[i]).toBeGreaterThan(betas[i - 1]);
  });

  it('telescopes to ᾱ(k/N)/ᾱ(0) wherever the cap does not bite (k ≤ 999)', () => {
    // Π (ᾱ(i/N)/ᾱ((i−1)/N)) = ᾱ(k/N)/ᾱ(0) exactly; the log-sum accumulates ≲ 1000·13·ε ≈ 3e-12
    // relative error, so 1e-11 relative.
    for (let k = 0; k <= 999; k++) {
      const ref = cosAbar(k / 1000) / cosAbar(0);
      expect(Math.abs(s.gammas[k] - ref) / ref).toBeLessThanOrEqual(1e-11);
    }
  });

  it("matches the official code's measured α and log SNR at t = 0.1 … 0.9", () => {
    expectRow(s, 0.1, 0.9859, 3.551);
    expectRow(s, 0.25, 0.9203, 1.711);
    expectRow(s, 0.5, 0.7027, -0.025);
    expectRow(s, 0.75, 0.3798, -1.78);
    expectRow(s, 0.9, 0.1552, -3.702);
  });

  it('shifted by 4, 16 and 256 matches the measured α and log SNR at t = 0.5', () => {
    expectRow(shiftSchedule(s, 4), 0.5, 0.4428, -1.411);
    expectRow(shiftSchedule(s, 16), 0.5, 0.2397, -2.797);
    expectRow(shiftSchedule(s, 256), 0.5, 0.0616, -5.57);
  });

  it('continuous ᾱ(t) = ᾱ(t)/ᾱ(0): 1 at t = 0, equal to the table at k/N, floored (finite log SNR) at t = 1', () => {
    expect(s.gamma(0)).toBe(1);
    for (const k of [1, 10, 100, 500, 900, 999]) {
      expect(Math.abs(s.gamma(k / 1000) - s.gammas[k]) / s.gammas[k]).toBeLessThanOrEqual(1e-11);
    }
    expect(s.gamma(1)).toBeGreaterThan(0);
    expect(Number.isFinite(s.logSnr(1))).toBe(true);
    expect(s.logSnr(1)).toBeLessThan(-20);
    expect(s.logSnr(0.5)).toBeCloseTo(logSnrOf(s.gammas[500]), 10);
  });

  it('float32 table is the float64 table rounded to float32', () => {
    expect(Array.from(s.gammasF32)).toEqual(Array.from(s.gammas, (g) => Math.fround(g)));
  });

  it('honours other step counts', () => {
    const s10 = squaredCosineSchedule(10);
    expect(s10.steps).toBe(10);
    expect(s10.gammas.length).toBe(11);
    expect(s10.gammas[0]).toBe(1);
    expect(Math.abs(s10.gammas[5] - cosAbar(0.5) / cosAbar(0)) / s10.gammas[5]).toBeLessThanOrEqual(1e-13);
  });
});

describe('squaredCosineSchedule against numpy (independent float64 reference)', () => {
  // numpy computes the same formula with its own libm and summation; the float64 tables should
  // agree to ~1 ulp of ᾱ ≤ 1 (1e-15 absolute; libm's cos/log/exp may differ by an ulp), and
  // rounding to float32 then gives bit-identical tables.
  const script = `
import json, math, sys
try:
    import numpy as np
except Exception as e:
    print(json.dumps({"missing": str(e)})); sys.exit(0)
N = 1000
ab = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
betas = np.array([0.0] + [min(1 - ab((i + 1) / N) / ab(i / N), 0.999) for i in range(N)], dtype=np.float64)
gammas = np.exp(np.cumsum(np.log(1 - betas)))
print(json.dumps({"f64": [float(g) for g in gammas], "f32": [float(g) for g in gammas.astype(np.float32)]}))
`;
  let ref: { missing?: string; f64?: number[]; f32?: number[] };
  try {
    ref = JSON.parse(execFileSync('python3', ['-c', script], { encoding: 'utf8', timeout: 60_000 }));
  } catch (error) {
    ref = { missing: `python3 could not run: ${(error as Error).message.split('\n')[0]}` };
  }

  it('float64 table within 1e-15 and float32 table bit-exact', (ctx) => {
    if (ref.missing) {
      console.warn(`numpy reference skipped: ${ref.missing}`);
      ctx.skip(`numpy is not available to python3 (${ref.missing}); install numpy to run this reference check`);
    }
    const s = squaredCosineSchedule();
    expect(ref.f64!.length).toBe(1001);
    let worst = 0;
    for (let i = 0; i <= 1000; i++) worst = Math.max(worst, Math.abs(s.gammas[i] - ref.f64![i]));
    expect(worst).toBeLessThanOrEqual(1e-15);
    expect(Array.from(s.gammasF32)).toEqual(ref.f32);
  });
});

describe('logSnrCosineSchedule', () => {
  const s = logSnrCosineSchedule();

  it('matches the measured α and log SNR at t = 0.1, 0.5, 0.9', () => {
    expectRow(s, 0.1, 0.9756, 2.983);
    expectRow(s, 0.5, 0.7076, 0.003);
    expectRow(s, 0.9, 0.2209, -2.97);
  });

  it('continuous log SNR runs from λmax = 5 at t = 0 to λmin = −5 at t = 1, 0 at t = ½ (closed form)', () => {
    // −2·ln tan(a·t + b): at t = 0, tan b = e^{−5/2}; at t = 1, tan(a + b) = e^{5/2}; at t = ½,
    // a/2 + b = π/4 since a + 2b = π/2. Errors are a few ulps of atan/tan/log: 1e-12.
    expect(s.logSnr(0)).toBeCloseTo(5, 12);
    expect(s.logSnr(1)).toBeCloseTo(-5, 12);
    expect(s.logSnr(0.5)).toBeCloseTo(0, 12);
    expect(s.gamma(0)).toBeCloseTo(1 / (1 + Math.exp(-5)), 14);
    const custom = logSnrCosineSchedule(1000, -10, 8);
    expect(custom.logSnr(0)).toBeCloseTo(8, 11);
    expect(custom.logSnr(1)).toBeCloseTo(-10, 11);
  });

  it('table: ᾱ_0 = 1, then ᾱ(τ) at τ = linspace(0, 1, N), strictly decreasing', () => {
    expect(s.gammas.length).toBe(1001);
    expect(s.gammas[0]).toBe(1);
    expect(s.gammas[1]).toBe(s.gamma(0));
    expect(s.gammas[1000]).toBe(s.gamma(1));
    expect(s.gammas[500]).toBeCloseTo(s.gamma(499 / 999), 15);
    for (let i = 1; i <= 1000; i++) expect(s.gammas[i]).toBeLessThan(s.gammas[i - 1]);
  });
});

describe('linearSchedule', () => {
  const s = linearSchedule();

  it('matches the measured α and log SNR at t = 0.1, 0.5, 0.9', () => {
    expectRow(s, 0.1, 0.9471, 2.165);
    expectRow(s, 0.5, 0.2803, -2.462);
    expectRow(s, 0.9, 0.0166, -8.198);
  });

  it('table equals the direct product Π (1 − β_j), β linear from 1e-4 to 0.02 (≤ 1e-12 relative)', () => {
    // Independent evaluation: plain multiplication instead of exp(Σ log). Both accumulate
    // ≲ 1000 roundings of ≈ ε each: ≈ 2e-13 relative, so 1e-12.
    let prod = 1;
    expect(s.gammas[0]).toBe(1);
    for (let j = 1; j <= 1000; j++) {
      const beta = 1e-4 + ((0.02 - 1e-4) * (j - 1)) / 999;
      prod *= 1 - beta;
      expect(Math.abs(s.gammas[j] - prod) / prod).toBeLessThanOrEqual(1e-12);
    }
    expect(1 - s.gammas[1]).toBeCloseTo(1e-4, 15);
    expect(1 - s.gammas[1000] / s.gammas[999]).toBeCloseTo(0.02, 12);
  });

  it('continuous ᾱ(t) = exp(−N(β0·t + (β1−β0)t²/2)) approximates the table', () => {
    expect(s.gamma(0)).toBe(1);
    expect(s.gamma(1)).toBeCloseTo(Math.exp(-1000 * (1e-4 + (0.02 - 1e-4) / 2)), 15);
    // The integral replaces Σ log(1 − β) ≈ −Σ β − Σ β²/2: at t = 0.5 the log differs by
    // Σ β²/2 + O(β) ≈ 0.02, so ᾱ agrees to ≈ 3% relative.
    expect(Math.abs(s.gamma(0.5) - s.gammas[500]) / s.gammas[500]).toBeLessThan(0.03);
  });
});
