import { describe, expect, it } from 'vitest';
import { scheduleByName } from './by-name.js';
import { linearSchedule, logSnrCosineSchedule, squaredCosineSchedule } from './families.js';
import { shiftSchedule } from './shift.js';

describe('scheduleByName', () => {
  it("'cosine' is the squared-cosine schedule", () => {
    const s = scheduleByName('cosine');
    expect(s.name).toBe('cosine');
    expect(Array.from(s.gammas)).toEqual(Array.from(squaredCosineSchedule().gammas));
  });

  it("'cosine-shift4' equals shiftSchedule(cosine, 4)", () => {
    const s = scheduleByName('cosine-shift4');
    const ref = shiftSchedule(squaredCosineSchedule(), 4);
    expect(s.name).toBe('cosine-shift4');
    expect(Array.from(s.gammas)).toEqual(Array.from(ref.gammas));
    expect(Array.from(s.gammasF32)).toEqual(Array.from(ref.gammasF32));
    expect(s.gamma(0.3)).toBe(ref.gamma(0.3));
  });

  it("'linear' is the DDPM linear-β schedule", () => {
    const s = scheduleByName('linear');
    expect(s.name).toBe('linear');
    expect(Array.from(s.gammas)).toEqual(Array.from(linearSchedule().gammas));
  });

  it("'cosine-logsnr-shift16' equals shiftSchedule(logSnrCosine, 16)", () => {
    const s = scheduleByName('cosine-logsnr-shift16');
    const ref = shiftSchedule(logSnrCosineSchedule(), 16);
    expect(s.name).toBe('cosine-logsnr-shift16');
    expect(Array.from(s.gammas)).toEqual(Array.from(ref.gammas));
    expect(s.logSnr(0.5)).toBeCloseTo(-Math.log(16), 9); // closed form: 0 − ln 16
  });

  it('accepts fractional shifts and other step counts', () => {
    const s = scheduleByName('linear-shift2.5', 100);
    expect(s.steps).toBe(100);
    expect(Array.from(s.gammas)).toEqual(Array.from(shiftSchedule(linearSchedule(100), 2.5).gammas));
  });

  it('unknown names throw an error that lists the valid forms', () => {
    for (const bad of ['cosin', 'cosine-shift', 'cosine-shiftx', 'sigmoid', 'Cosine', 'cosine-shift4-extra', '']) {
      expect(() => scheduleByName(bad)).toThrow(Error);
      try {
        scheduleByName(bad);
      } catch (error) {
        const msg = (error as Error).message;
        expect(msg).toContain(`'${bad}'`);
        for (const form of ['cosine', 'cosine-logsnr', 'linear', '-shiftN']) expect(msg).toContain(form);
      }
    }
  });

  it('continuous gamma(t) of a named schedule rejects t outside [0, 1] with a RangeError', () => {
    for (const name of ['cosine', 'cosine-shift4', 'linear', 'cosine-logsnr-shift16']) {
      const s = scheduleByName(name);
      expect(() => s.gamma(-0.01)).toThrow(RangeError);
      expect(() => s.gamma(1.01)).toThrow(RangeError);
      expect(() => s.logSnr(Number.NaN)).toThrow(RangeError);
      expect(Number.isFinite(s.gamma(0.5))).toBe(true);
    }
  });
});
