import { describe, expect, it } from 'vitest';
import { shiftSchedule, squaredCosineSchedule } from '@matryoshka-ts/schedules';
import { vdmLossWeights } from './vdm-weights.js';

const base = squaredCosineSchedule(1000);

/** SNR(t−1)/SNR(t) − 1 of the step from gammas[t] to gammas[t+1], in float64 through log-SNR: expm1(λ_t − λ_{t+1}). */
function reference(gammas: Float64Array, t: number): number {
  const logSnr = (g: number) => Math.log(g) - Math.log1p(-g);
  return Math.expm1(logSnr(gammas[t]) - logSnr(gammas[t + 1]));
}

describe('VDM loss weights', () => {
  it.each([
    ['unshifted', base],
    ['shifted by 4', shiftSchedule(base, 4)],
  ])('equal SNR(t)/SNR(t+1) − 1 of the float64 table at every t ≥ 1 (%s)', (_name, schedule) => {
    const times = Array.from({ length: 999 }, (_, i) => i + 1);
    const ours = vdmLossWeights(schedule.gammas, times);
    // Two float64 evaluations of the same quantity; the ratio form loses a few digits to the
    // final "− 1" where the step is small (w ≈ 1e-3 at t = 1), hence 1e-9 relative.
    times.forEach((t, i) =>
      expect(Math.abs(ours[i] - reference(schedule.gammas, t)), `t=${t}`).toBeLessThanOrEqual(
        1e-9 * Math.abs(reference(schedule.gammas, t)),
      ),
    );
    expect(ours.every((w) => w > 0)).toBe(true); // SNR falls at every step
  });

  it('t = 0 (g_last = gammas[0] = 1, infinite) takes the weight of t = 1', () => {
    const [w0, w1, w2] = vdmLossWeights(base.gammasF32, [0, 1, 2]);
    expect(Number.isFinite(w0)).toBe(true);
    expect(w0).toBe(w1);
    expect(w2).not.toBe(w1);
  });

  it('are the same for every level: the shift divides both SNRs by s^p, so their ratio stays', () => {
    const times = Array.from({ length: 1000 }, (_, t) => t);
    const plain = vdmLossWeights(base.gammas, times);
    for (const factor of [2, 4, 256]) {
      const shifted = vdmLossWeights(shiftSchedule(base, factor).gammas, times);
      // float64 rounding of the shifted table, amplified by 1/w (w ≥ 1e-3): ≤ 1e-9 relative.
      times.forEach((t) =>
        expect(Math.abs(shifted[t] - plain[t]), `factor ${factor}, t=${t}`).toBeLessThanOrEqual(1e-9 * plain[t]),
      );
    }
  });

  it('rejects indices outside 0 … steps − 1', () => {
    expect(() => vdmLossWeights(base.gammas, [1000])).toThrow(/outside 0…999/);
    expect(() => vdmLossWeights(base.gammas, [-1])).toThrow(/outside/);
    expect(() => vdmLossWeights(base.gammas, [1.5])).toThrow(/outside/);
    expect(() => vdmLossWeights([1, 0.5], [0])).toThrow(/at least 3 entries/);
  });
});
