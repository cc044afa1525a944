import { type Schedule, makeSchedule } from './schedule.js';

/**
 * The shift factor of a level: s^p, where s is the level's size over the innermost level's size
 * and p the shift power (1 in the paper's 256 px configs, 2 in the official 1024 px config).
 * The paper's `cosine-shiftN` means N = s^p.
 */
export function shiftFactor(scale: number, power = 1): number {
  if (!(scale >= 1)) throw new RangeError(`level scale must be ≥ 1 (the innermost level is 1), got ${scale}`);
  return scale ** power;
}

/**
 * Shifts a schedule for a higher-resolution level: SNR' = SNR / factor, i.e. log SNR is lowered
 * by ln(factor); ᾱ' = 1/(1 + 1/SNR'). A factor ≤ 1 leaves the schedule unchanged (the innermost
 * level); `gammas[0] = 1` stays 1. The float32 table repeats the official code's float32
 * arithmetic so parity tests can look values up bit for bit.
 */
export function shiftSchedule(base: Schedule, factor: number): Schedule {
  if (!(factor > 1)) return base;
  const shift = (g: number) => {
    if (g >= 1) return 1;
    const snr = g / (1 - g) / factor;
    return 1 / (1 + 1 / snr);
  };
  const gammas = base.gammas.map(shift);
  const f = Math.fround(factor);
  const gammasF32 = base.gammasF32.map((g) => {
    const snr = Math.fround(Math.fround(g / Math.fround(1 - g)) / f);
    return Math.fround(1 / Math.fround(1 + Math.fround(1 / snr)));
  });
  return makeSchedule(`${base.name}-shift${factor}`, gammas, (t) => shift(base.gamma(t)), gammasF32);
}
