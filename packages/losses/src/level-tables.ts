import { type Schedule, shiftFactor, shiftSchedule } from '@matryoshka-ts/schedules';

/**
 * Each level's float32 ᾱ table (level 0 first, `steps + 1` entries, `[0] = 1`), as the official
 * code looks γ up: the base schedule shifted by SNR / s^p for a level whose size is s times the
 * innermost level's (`levelScales`, innermost = 1), or unshifted everywhere when `shifted` is false.
 */
export function levelGammaTables(base: Schedule, levelScales: readonly number[], power = 1, shifted = true): Float32Array[] {
  return levelScales.map((scale) => shiftSchedule(base, shifted ? shiftFactor(scale, power) : 1).gammasF32);
}
