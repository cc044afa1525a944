import { describe, expect, it } from 'vitest';
import { fullGrid, roundHalfEven, samplingGrid } from './grid.js';

describe('roundHalfEven (numpy round)', () => {
  it('rounds ties to the even neighbour', () => {
    expect(roundHalfEven(500.5)).toBe(500);
    expect(roundHalfEven(501.5)).toBe(502);
    expect(roundHalfEven(0.5)).toBe(0);
    expect(roundHalfEven(1.5)).toBe(2);
    expect(roundHalfEven(2.5)).toBe(2);
    expect(roundHalfEven(-1.5)).toBe(-2);
    expect(roundHalfEven(-2.5)).toBe(-2);
    // -0.5 → -0 (numpy gives -0.0); either zero is acceptable.
    expect(Math.abs(roundHalfEven(-0.5))).toBe(0);
  });

  it('rounds non-ties to the nearest integer', () => {
    expect(roundHalfEven(2.4)).toBe(2);
    expect(roundHalfEven(2.6)).toBe(3);
    expect(roundHalfEven(-2.4)).toBe(-2);
    expect(roundHalfEven(-2.6)).toBe(-3);
    expect(roundHalfEven(7)).toBe(7);
  });
});

describe('samplingGrid', () => {
  it('K = 5 over 1000 steps is the official grid (834 … 0; 500.5 → 500 by half-even rounding)', () => {
    expect(samplingGrid(5)).toEqual([834, 667, 500, 334, 167, 0]);
    expect(samplingGrid(5, 1000)).toEqual([834, 667, 500, 334, 167, 0]);
  });

  it('K = 4 → [801, 601, 400, 200, 0]', () => {
    expect(samplingGrid(4)).toEqual([801, 601, 400, 200, 0]);
  });

  it('K = 50 starts 981, 962, 942, decreases strictly and ends at 0', () => {
    const g = samplingGrid(50);
    expect(g.length).toBe(51);
    expect(g.slice(0, 3)).toEqual([981, 962, 942]);
    expect(g[50]).toBe(0);
    for (let i = 1; i < g.length; i++) expect(g[i]).toBeLessThan(g[i - 1]);
  });

  it('K = N (1000) visits every integer from 1000 down to 0', () => {
    expect(samplingGrid(1000)).toEqual(Array.from({ length: 1001 }, (_, i) => 1000 - i));
  });

  it('matches round(k·(N+1)/(K+1)) for a range of K, every entry an integer in [0, N]', () => {
    for (const K of [1, 2, 3, 7, 10, 25, 100, 250, 999]) {
      const g = samplingGrid(K);
      expect(g.length).toBe(K + 1);
      g.forEach((v, i) => {
        const exact = ((K - i) * 1001) / (K + 1);
        expect(Number.isInteger(v)).toBe(true);
        expect(Math.abs(v - exact)).toBeLessThanOrEqual(0.5);
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1000);
      });
    }
  });

  it('works for other diffusion lengths', () => {
    expect(samplingGrid(2, 10)).toEqual([7, 4, 0]); // 11/3 = 3.67: 7.33 → 7, 3.67 → 4
  });

  it('rejects K = 0, non-integer K, negative K and K > N', () => {
    expect(() => samplingGrid(0)).toThrow(RangeError);
    expect(() => samplingGrid(1.5)).toThrow(RangeError);
    expect(() => samplingGrid(-3)).toThrow(RangeError);
    expect(() => samplingGrid(Number.NaN)).toThrow(RangeError);
    expect(() => samplingGrid(1001)).toThrow(/exceeds/);
    expect(() => samplingGrid(11, 10)).toThrow(RangeError);
  });
});

describe('fullGrid', () => {
  it('fullGrid(10) = [10, 9, …, 0]', () => {
    expect(fullGrid(10)).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  });

  it('defaults to 1000 steps and equals samplingGrid(N)', () => {
    const g = fullGrid();
    expect(g.length).toBe(1001);
    expect(g[0]).toBe(1000);
    expect(g[1000]).toBe(0);
    expect(g).toEqual(samplingGrid(1000));
  });
});
