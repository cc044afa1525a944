export type { Schedule } from './schedule.js';
export { gammaOfLogSnr, gammasFromBetas, logSnrOf, makeSchedule } from './schedule.js';
export { linearSchedule, logSnrCosineSchedule, squaredCosineSchedule } from './families.js';
export { shiftFactor, shiftSchedule } from './shift.js';
export {
  SIMPLE_DIFFUSION_REFERENCE,
  fractionTableTime,
  linspaceTableTime,
  logSnrInterpolatedSchedule,
  logSnrShift,
  logSnrShiftSchedule,
} from './simple-diffusion.js';
export type { TableTime } from './simple-diffusion.js';
export { fullGrid, roundHalfEven, samplingGrid } from './grid.js';
export { scheduleByName } from './by-name.js';
export type { ScheduleFamily } from './by-name.js';
export { levelScales, levelSchedules } from './level-schedules.js';
export type { LevelScheduleOptions, LevelSchedules } from './level-schedules.js';
export { gridTimeOf, networkTimeOf } from './time-convention.js';
