import { describe, expect, it } from 'vitest';
import { scheduleByName } from './by-name.js';
import { linearSchedule, logSnrCosineSchedule, squaredCosineSchedule } from './families.js';
import { shiftSchedule } from './shift.js';
import { linspaceTableTime, logSnrInterpolatedSchedule, logSnrShiftSchedule } from './simple-diffusion.js';

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

  it("'cosine-res256' is simple diffusion's log-SNR shift from 64 px to 256 px", () => {
    const s = scheduleByName('cosine-res256');
    const ref = logSnrShiftSchedule(squaredCosineSchedule(), 256);
    expect(s.name).toBe('cosine-res256');
    expect(Array.from(s.gammas)).toEqual(Array.from(ref.gammas));
    expect(Array.from(s.gammasF32)).toEqual(Array.from(ref.gammasF32));
    // Closed form: log SNR moves by 2·ln(64/256) = −4·ln 2 (logit round trip near λ ≈ 3.5: 1e-12).
    expect(s.logSnr(0.3) - squaredCosineSchedule().logSnr(0.3)).toBeCloseTo(-4 * Math.LN2, 12);
  });

  it("'linear-res128-ref32' shifts from a 32 px reference; '-res64' is the base itself", () => {
    const s = scheduleByName('linear-res128-ref32', 100);
    expect(s.name).toBe('linear-res128-ref32');
    expect(s.steps).toBe(100);
    expect(Array.from(s.gammas)).toEqual(Array.from(logSnrShiftSchedule(linearSchedule(100), 128, 32).gammas));
    expect(Array.from(scheduleByName('cosine-res64').gammas)).toEqual(Array.from(squaredCosineSchedule().gammas));
    expect(scheduleByName('cosine-res64').name).toBe('cosine');
  });

  it("'cosine-logsnr-res512-interp32-256' interpolates on the log-SNR cosine's linspace times", () => {
    const s = scheduleByName('cosine-logsnr-res512-interp32-256');
    const ref = logSnrInterpolatedSchedule(logSnrCosineSchedule(), 512, 32, 256, linspaceTableTime);
    expect(s.name).toBe('cosine-logsnr-res512-interp32-256');
    expect(Array.from(s.gammas)).toEqual(Array.from(ref.gammas));
    // λ(½) = 0 for the symmetric ±5 base: ½·2·ln(32/512) + ½·2·ln(256/512) = −5·ln 2 (1e-12).
    expect(s.logSnr(0.5)).toBeCloseTo(-5 * Math.LN2, 12);
    expect(() => scheduleByName('cosine-res512-interp256-32')).toThrow(RangeError);
  });

  it('unknown names throw an error that lists the valid forms', () => {
    for (const bad of [
      'cosin',
      'cosine-shift',
      'cosine-shiftx',
      'sigmoid',
      'Cosine',
      'cosine-shift4-extra',
      '',
      'cosine-res',
      'cosine-res256-interp32',
      'cosine-shift4-res256',
      'cosine-res256-ref32-interp32-64',
    ]) {
      expect(() => scheduleByName(bad)).toThrow(Error);
      try {
        scheduleByName(bad);
      } catch (error) {
        const msg = (error as Error).message;
        expect(msg).toContain(`'${bad}'`);
        for (const form of ['cosine', 'cosine-logsnr', 'linear', '-shiftN', '-resD', '-refR', '-interpL-H'])
          expect(msg).toContain(form);
      }
    }
  });

  it('continuous gamma(t) of a named schedule rejects t outside [0, 1] with a RangeError', () => {
    for (const name of [
      'cosine',
      'cosine-shift4',
      'linear',
      'cosine-logsnr-shift16',
      'cosine-res256',
      'linear-res512-interp32-256',
    ]) {
      const s = scheduleByName(name);
      expect(() => s.gamma(-0.01)).toThrow(RangeError);
      expect(() => s.gamma(1.01)).toThrow(RangeError);
      expect(() => s.logSnr(Number.NaN)).toThrow(RangeError);
      expect(Number.isFinite(s.gamma(0.5))).toBe(true);
    }
  });
});
