import { type Schedule, gammaOfLogSnr, logSnrOf, makeSchedule } from './schedule.js';

/**
 * The noise schedules of simple diffusion (Hoogeboom, Heek & Salimans 2023, arXiv 2301.11093,
 * §3.1 "Adjusting Noise Schedules"). A schedule tuned at a reference resolution (64 px) is moved to
 * resolution d by shifting its log SNR:
 *
 *   logSNR_shift(t) = logSNR(t) + 2·ln(64/d)
 *
 * Why 2·ln: average-pooling a d×d image down to 64×64 averages (d/64)² independent noise values,
 * so the pooled image has SNR·(d/64)²; lowering log SNR by 2·ln(d/64) keeps that pooled SNR at the
 * reference schedule's. ᾱ = sigmoid(logSNR). This equals the ml-mdm shift `shiftSchedule(base, (d/64)²)`
 * (SNR / s^p with s = d/64, p = 2) up to rounding, but also allows d < 64 (less noise).
 */
export const SIMPLE_DIFFUSION_REFERENCE = 64;

/** Continuous time t ∈ [0, 1] that table entry k of `steps` stands for. */
export type TableTime = (k: number, steps: number) => number;

/** Table entry k is t = k/N: the squared-cosine and linear tables (`gammas[k]` = ᾱ(k/N)). */
export const fractionTableTime: TableTime = (k, steps) => k / steps;

/**
 * Table entries 1…N are τ = linspace(0, 1, N) and entry 0 is t = 0: the `logSnrCosineSchedule`
 * table. Written as (k − 1)·(1/(N − 1)) like that table, so both give bit-identical τ.
 */
export const linspaceTableTime: TableTime = (k, steps) => (k === 0 ? 0 : k === steps ? 1 : (k - 1) * (1 / (steps - 1)));

function checkResolution(what: string, resolution: number): number {
  if (!(resolution > 0 && Number.isFinite(resolution)))
    throw new RangeError(`${what} must be a positive resolution in pixels, got ${resolution}`);
  return resolution;
}

/** The log-SNR shift of §3.1 for resolution d: 2·ln(reference/d); negative (more noise) when d > reference. */
export function logSnrShift(resolution: number, reference = SIMPLE_DIFFUSION_REFERENCE): number {
  return 2 * Math.log(checkResolution('reference', reference) / checkResolution('resolution', resolution));
}

/**
 * `base` with a time-dependent log-SNR offset: ᾱ'(t) = sigmoid(logSNR(t) + offset(t)), in the table
 * (entry k at t = tableTime(k)) and in continuous t. `gammas[0] = 1` (log SNR = +∞) stays 1, as in
 * `shiftSchedule`.
 */
function offsetLogSnr(base: Schedule, name: string, offset: (t: number) => number, tableTime: TableTime): Schedule {
  const shifted = (gamma: number, t: number) => (gamma >= 1 ? 1 : gammaOfLogSnr(logSnrOf(gamma) + offset(t)));
  const gammas = base.gammas.map((g, k) => shifted(g, tableTime(k, base.steps)));
  // No official float32 implementation exists to match bit for bit (unlike the ml-mdm shift), so
  // makeSchedule's default float32 table, Math.fround of each float64 entry, is the closest one.
  return makeSchedule(name, gammas, (t) => shifted(base.gamma(t), t));
}

/**
 * The shifted schedule of simple diffusion §3.1: logSNR_shift(t) = logSNR(t) + 2·ln(reference/d),
 * for `base` defined at `reference` px (64 in the paper) and images of `resolution` = d px.
 * d = reference returns `base` itself. Named `<base>-res<d>`, plus `-ref<reference>` when it is not 64.
 */
export function logSnrShiftSchedule(
  base: Schedule,
  resolution: number,
  reference = SIMPLE_DIFFUSION_REFERENCE,
): Schedule {
  const shift = logSnrShift(resolution, reference);
  if (shift === 0) return base;
  const ref = reference === SIMPLE_DIFFUSION_REFERENCE ? '' : `-ref${reference}`;
  // A constant offset does not depend on t, so the table's time map does not matter.
  return offsetLogSnr(base, `${base.name}-res${resolution}${ref}`, () => shift, fractionTableTime);
}

/**
 * The interpolated schedule of simple diffusion §3.1 ("shifted interpolated"): linear interpolation
 * in t between two shifted schedules of the same d-px images, shifted as if the reference were
 * `low` and `high` px (the paper's 512 px example: low = 32, high = 256):
 *
 *   logSNR_interp(t) = t·logSNR_shift,low(t) + (1 − t)·logSNR_shift,high(t)
 *                    = logSNR(t) + t·2·ln(low/d) + (1 − t)·2·ln(high/d)
 *
 * t = 0 (noise-free end) follows the `high` shift (less noise: room for high-frequency detail),
 * t = 1 (pure-noise end) follows the `low` shift (more noise: global structure first).
 * `low ≤ high` keeps log SNR decreasing in t. The table needs each entry's t for the weights:
 * `tableTime` maps entry k to t (default k/N; pass `linspaceTableTime` for `logSnrCosineSchedule`).
 * Named `<base>-res<d>-interp<low>-<high>`; returns `base` when low = high = d.
 */
export function logSnrInterpolatedSchedule(
  base: Schedule,
  resolution: number,
  low: number,
  high: number,
  tableTime: TableTime = fractionTableTime,
): Schedule {
  const shiftLow = logSnrShift(resolution, low);
  const shiftHigh = logSnrShift(resolution, high);
  if (!(low <= high))
    throw new RangeError(`interpolation needs low ≤ high (log SNR must fall in t), got ${low} > ${high}`);
  if (shiftLow === 0 && shiftHigh === 0) return base;
  const offset = (t: number) => t * shiftLow + (1 - t) * shiftHigh;
  return offsetLogSnr(base, `${base.name}-res${resolution}-interp${low}-${high}`, offset, tableTime);
}
