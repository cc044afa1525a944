import { linearSchedule, logSnrCosineSchedule, squaredCosineSchedule } from './families.js';
import type { Schedule } from './schedule.js';
import { shiftSchedule } from './shift.js';

export type ScheduleFamily = 'cosine' | 'cosine-logsnr' | 'linear';

/**
 * A schedule from a paper-style name: `cosine`, `cosine-shift4`, `linear`, `cosine-logsnr-shift16`.
 * The optional `-shiftN` suffix divides the SNR by N.
 */
export function scheduleByName(name: string, steps = 1000): Schedule {
  const m = /^(cosine-logsnr|cosine|linear)(?:-shift(\d+(?:\.\d+)?))?$/.exec(name);
  if (!m)
    throw new Error(
      `Unknown schedule '${name}': ` +
        `expected cosine, cosine-logsnr or linear, optionally with -shiftN (e.g. cosine-shift4)`,
    );
  const family = m[1] as ScheduleFamily;
  const base =
    family === 'cosine'
      ? squaredCosineSchedule(steps)
      : family === 'linear'
        ? linearSchedule(steps)
        : logSnrCosineSchedule(steps);
  return m[2] ? shiftSchedule(base, Number(m[2])) : base;
}
