import { describe, expect, it } from 'vitest';
import { squaredCosineSchedule } from './families.js';
import { levelScales, levelSchedules } from './level-schedules.js';
import { shiftSchedule } from './shift.js';
import { gridTimeOf, networkTimeOf } from './time-convention.js';

const base = squaredCosineSchedule(1000);
const table = (s: { gammasF32: Float32Array }) => Array.from(s.gammasF32);

describe('levelSchedules', () => {
  it('shifts each level by its scale^power (float32, as the official code), the innermost not at all', () => {
    const [l0, l1, l2] = levelSchedules(base, [4, 2, 1]);
    expect(table(l0)).toEqual(table(shiftSchedule(base, 4)));
    expect(table(l1)).toEqual(table(shiftSchedule(base, 2)));
    expect(l2).toBe(base);
    expect(table(levelSchedules(base, [2, 1], { power: 2 })[0])).toEqual(table(shiftSchedule(base, 4)));
    expect(levelSchedules(base, [2, 1], { shifted: false })[0]).toBe(base);
  });

  it('shifts log SNR down by p·ln(scale) (the closed form) at every continuous t', () => {
    const [l0] = levelSchedules(base, [4, 1], { power: 1 });
    for (const t of [0.1, 0.37, 0.5, 0.9]) expect(l0.logSnr(t)).toBeCloseTo(base.logSnr(t) - Math.log(4), 9);
  });

  it('levelScales divides by the innermost resolution; an empty list is an error', () => {
    expect(levelScales([64, 32, 16])).toEqual([4, 2, 1]);
    expect(levelScales([256, 64])).toEqual([4, 1]);
    expect(() => levelScales([])).toThrow(/no levels/);
    // The paper's video shifts: MDM-S64T16 (temporal level cosine-shift4), MDM-S64T16S256 (cosine-shift16).
    expect(levelScales([64, 64], [16, 1])).toEqual([4, 1]);
    expect(levelScales([256, 64, 64], [16, 16, 1])).toEqual([16, 4, 1]);
  });
});

describe('time convention', () => {
  it('the network index i stands for table entry i + 1, and the two maps are inverse', () => {
    expect(gridTimeOf(0)).toBe(1);
    expect(networkTimeOf(1000)).toBe(999);
    for (const t of [1, 17, 999]) expect(gridTimeOf(networkTimeOf(t))).toBe(t);
  });
});
