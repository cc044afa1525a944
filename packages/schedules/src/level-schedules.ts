import type { Schedule } from './schedule.js';
import { shiftFactor, shiftSchedule } from './shift.js';

/**
 * One noise schedule per level of a nested model, level 0 (the highest resolution) first: the
 * type every package passes around (losses draw training examples from it, samplers step with it,
 * runs rebuild it from their config).
 */
export type LevelSchedules = readonly Schedule[];

export interface LevelScheduleOptions {
  /** The shift power p: level n uses SNR / scales[n]^p (default 1, the paper's 256 px configs). */
  power?: number;
  /** false: every level uses the base schedule unshifted (default true). */
  shifted?: boolean;
}

/**
 * Level sizes relative to the innermost level: resolutions [64, 32, 16] → [4, 2, 1]. A level of
 * F frames counts as its clip tiled √F × √F (the official code's clip image, the paper's shifts):
 * 16 frames of 64 px over a 64 px image → 4 (`cosine-shift4`), of 256 px → 16 (`cosine-shift16`).
 */
export function levelScales(resolutions: readonly number[], frames?: readonly number[]): number[] {
  if (resolutions.length === 0) throw new RangeError('levelScales: no levels given');
  if (frames && frames.length !== resolutions.length)
    throw new RangeError(`levelScales: ${frames.length} frame counts for ${resolutions.length} levels`);
  const side = (n: number) => resolutions[n] * Math.sqrt(frames?.[n] ?? 1);
  const innermost = side(resolutions.length - 1);
  return resolutions.map((_, n) => side(n) / innermost);
}

/**
 * The resolution-specific schedules of the paper (§3.2): level n, whose size is `scales[n]` times
 * the innermost level's, uses the base schedule with SNR / scales[n]^p; the innermost is unshifted.
 */
export function levelSchedules(
  base: Schedule,
  scales: readonly number[],
  options: LevelScheduleOptions = {},
): Schedule[] {
  const { power = 1, shifted = true } = options;
  return scales.map((scale) => shiftSchedule(base, shifted ? shiftFactor(scale, power) : 1));
}
