export type { Schedule } from './schedule.js';
export { gammaOfLogSnr, gammasFromBetas, logSnrOf, makeSchedule } from './schedule.js';
export { linearSchedule, logSnrCosineSchedule, squaredCosineSchedule } from './families.js';
export { shiftFactor, shiftSchedule } from './shift.js';
export { fullGrid, roundHalfEven, samplingGrid } from './grid.js';
export { scheduleByName } from './by-name.js';
export type { ScheduleFamily } from './by-name.js';
