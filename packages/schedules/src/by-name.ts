import { linearSchedule, logSnrCosineSchedule, squaredCosineSchedule } from './families.js';
import type { Schedule } from './schedule.js';
import { shiftSchedule } from './shift.js';
import {
  type TableTime,
  fractionTableTime,
  linspaceTableTime,
  logSnrInterpolatedSchedule,
  logSnrShiftSchedule,
} from './simple-diffusion.js';

export type ScheduleFamily = 'cosine' | 'cosine-logsnr' | 'linear';

const NUM = String.raw`(\d+(?:\.\d+)?)`;
const NAME = new RegExp(
  String.raw`^(cosine-logsnr|cosine|linear)` +
    String.raw`(?:-shift${NUM}|-res${NUM}(?:-ref${NUM}|-interp${NUM}-${NUM})?)?$`,
);

function familySchedule(family: ScheduleFamily, steps: number): { base: Schedule; tableTime: TableTime } {
  if (family === 'cosine') return { base: squaredCosineSchedule(steps), tableTime: fractionTableTime };
  if (family === 'linear') return { base: linearSchedule(steps), tableTime: fractionTableTime };
  return { base: logSnrCosineSchedule(steps), tableTime: linspaceTableTime };
}

/**
 * A schedule from a paper-style name: `cosine`, `cosine-shift4`, `linear`, `cosine-logsnr-shift16`,
 * `cosine-res256`, `cosine-logsnr-res512-interp32-256`. Optional suffixes (at most one kind):
 * - `-shiftN`: the ml-mdm shift, SNR / N (`shiftSchedule`);
 * - `-resD`, `-resD-refR`: simple diffusion's shift to D px from a base at R px (default 64),
 *   log SNR + 2·ln(R/D) (`logSnrShiftSchedule`);
 * - `-resD-interpL-H`: simple diffusion's interpolation from the L-px shift at t = 1 to the H-px
 *   shift at t = 0 (`logSnrInterpolatedSchedule`).
 */
export function scheduleByName(name: string, steps = 1000): Schedule {
  const m = NAME.exec(name);
  if (!m)
    throw new Error(
      `Unknown schedule '${name}': expected cosine, cosine-logsnr or linear, optionally with -shiftN ` +
        `(e.g. cosine-shift4), -resD[-refR] (e.g. cosine-res256) or -resD-interpL-H (e.g. cosine-res512-interp32-256)`,
    );
  const [, family, shift, resolution, reference, low, high] = m;
  const { base, tableTime } = familySchedule(family as ScheduleFamily, steps);
  if (shift) return shiftSchedule(base, Number(shift));
  if (low) return logSnrInterpolatedSchedule(base, Number(resolution), Number(low), Number(high), tableTime);
  if (resolution) return logSnrShiftSchedule(base, Number(resolution), reference ? Number(reference) : undefined);
  return base;
}
