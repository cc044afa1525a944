import { describe, expect, it } from 'vitest';
import { shiftSchedule, squaredCosineSchedule } from '@matryoshka-ts/schedules';
import { minSnrWeights } from './min-snr-weights.js';
import { referenceElement, rngFor, uniformF32 } from './test-helpers.js';

const base = squaredCosineSchedule(1000);
const times = Array.from({ length: 1000 }, (_, t) => t);
const snrAt = (gammas: ArrayLike<number>, t: number) => gammas[t + 1] / (1 - gammas[t + 1]);

describe('min-SNR-γ weights', () => {
  // The definition: every target's weighted error equals min(SNR, γ)·‖x̂0 − x0‖². Checked on
  // random elements through the float64 closed forms of x̂0, ε̂ and v̂ (test-helpers), which do not
  // use the SNR identities the weights are written with. Float64 throughout: 1e-9 relative.
  it.each(['eps', 'v', 'x0'] as const)('%s target: w·(target error)² = min(SNR, 5)·(x0 error)²', (target) => {
    const rng = rngFor(11);
    const ts = [0, 3, 40, 200, 500, 800, 999];
    const weights = minSnrWeights(base.gammas, ts, 5, target);
    ts.forEach((t, k) => {
      const g = base.gammas[t + 1];
      const [x0, e, o] = uniformF32(rng, 3, -1, 1);
      const r = referenceElement('v', o, x0, e, g);
      const err = target === 'eps' ? r.epsHat - e : target === 'v' ? r.vHat - r.v : r.x0Hat - x0;
      const want = Math.min(snrAt(base.gammas, t), 5) * (r.x0Hat - x0) ** 2;
      expect(Math.abs(weights[k] * err ** 2 - want), `t=${t}`).toBeLessThanOrEqual(1e-9 * Math.max(want, 1e-12));
    });
  });

  it('eps target: 1 where SNR ≤ γ (the noisy end), γ/SNR below it; never above 1', () => {
    const w = minSnrWeights(base.gammasF32, times, 5, 'eps');
    times.forEach((t) => {
      const snr = snrAt(base.gammasF32, t);
      if (snr <= 5) expect(w[t]).toBe(1);
      else expect(w[t]).toBeCloseTo(5 / snr, 12);
    });
    expect(w[0]).toBeLessThan(1e-3); // SNR ≈ 1.6e4 at the first step
    expect(w[999]).toBe(1);
  });

  it('a shifted level (SNR / 4 at every t) is down-weighted less, from its own table', () => {
    const shifted = shiftSchedule(base, 4);
    const plain = minSnrWeights(base.gammasF32, times, 5, 'eps');
    const low = minSnrWeights(shifted.gammasF32, times, 5, 'eps');
    times.forEach((t) => expect(low[t]).toBeGreaterThanOrEqual(plain[t]));
    // Where both are clipped, the shifted one is 4× the plain one.
    expect(low[0] / plain[0]).toBeCloseTo(4, 3);
  });

  it('has no 0/0 where ᾱ underflows to 0', () => {
    const gammas = [1, 0.5, 0];
    expect(minSnrWeights(gammas, [0, 1], 5, 'eps')).toEqual([1, 1]);
    expect(minSnrWeights(gammas, [1], 5, 'v')).toEqual([0]);
  });

  it('rejects a bad γ or training index, naming it', () => {
    expect(() => minSnrWeights(base.gammas, [0], 0, 'eps')).toThrow(/γ must be a positive number, got 0/);
    expect(() => minSnrWeights(base.gammas, [1000], 5, 'eps')).toThrow(/training index 1000 outside 0…999/);
    expect(() => minSnrWeights(base.gammas, [1.5], 5, 'eps')).toThrow(/training index 1.5/);
  });
});
