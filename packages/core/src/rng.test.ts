import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng, type RngState } from './rng.js';

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
});

const draw = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.nextUint32());

describe('Rng: xoshiro128** core', () => {
  it('matches the reference xoshiro128** outputs for state [1, 2, 3, 4]', () => {
    // Published test vector (Blackman & Vigna's reference implementation; also rand_xoshiro's
    // test suite): the first ten outputs from s = {1, 2, 3, 4}.
    const rng = new Rng({ words: [1, 2, 3, 4], spare: null });
    expect(draw(rng, 10)).toEqual([
      11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804,
    ]);
  });

  it('outputs are 32-bit unsigned integers', () => {
    const rng = new Rng(123);
    for (const v of draw(rng, 1000)) {
      expect(Number.isInteger(v)).toBe(true);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(0xffffffff);
    }
  });
});

describe('Rng: seeding', () => {
  it('the same seed gives the same sequence', () => {
    expect(draw(new Rng(42), 100)).toEqual(draw(new Rng(42), 100));
    const a = new Rng(7);
    const b = new Rng(7);
    expect(Array.from({ length: 50 }, () => a.normal())).toEqual(Array.from({ length: 50 }, () => b.normal()));
  });

  it('different seeds give different sequences (and different states)', () => {
    const seqs = [0, 1, 2, 42, 2 ** 31, 0xffffffff].map((s) => draw(new Rng(s), 8).join());
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(new Rng(1).getState().words).not.toEqual(new Rng(2).getState().words);
  });

  it('the default seed is 0 and seed 0 is not a stuck all-zero state', () => {
    expect(draw(new Rng(), 5)).toEqual(draw(new Rng(0), 5));
    const words = new Rng(0).getState().words;
    expect(words.some((w) => w !== 0)).toBe(true);
    expect(new Set(draw(new Rng(0), 100)).size).toBeGreaterThan(95);
  });

  it('seeds are taken modulo 2^32', () => {
    expect(draw(new Rng(-1), 5)).toEqual(draw(new Rng(0xffffffff), 5));
    expect(draw(new Rng(2 ** 32 + 5), 5)).toEqual(draw(new Rng(5), 5));
  });
});

describe('Rng: state', () => {
  it('getState/setState resume the exact sequence', () => {
    const a = new Rng(99);
    draw(a, 17);
    const state = a.getState();
    const expected = draw(a, 50);
    const b = new Rng(1);
    b.setState(state);
    expect(draw(b, 50)).toEqual(expected);
    expect(draw(new Rng(state), 50)).toEqual(expected);
  });

  it('a pending Box–Muller spare is part of the state', () => {
    const a = new Rng(5);
    a.normal(); // draws a pair, keeps the second as the spare
    const state = a.getState();
    expect(typeof state.spare).toBe('number');
    const expected = [a.normal(), a.normal(), a.normal(), a.uniform()];
    expect(expected[0]).toBe(state.spare); // the spare is served first
    const b = new Rng(state);
    expect([b.normal(), b.normal(), b.normal(), b.uniform()]).toEqual(expected);
    // Without the spare the continuation would differ: the spare must really be restored.
    const c = new Rng({ words: state.words, spare: null });
    expect(c.normal()).not.toBe(expected[0]);
  });

  it('no spare after an even number of normals', () => {
    const a = new Rng(5);
    a.normal();
    a.normal();
    expect(a.getState().spare).toBeNull();
  });

  it('state is plain JSON and survives a JSON round trip exactly', () => {
    const a = new Rng(2024);
    a.normals(3); // odd count: a spare is pending
    const json = JSON.stringify(a.getState());
    const parsed = JSON.parse(json) as RngState;
    expect(parsed.words.length).toBe(4);
    expect(parsed).toEqual(a.getState());
    const b = new Rng(parsed);
    expect(Array.from(b.normals(20))).toEqual(Array.from(a.normals(20)));
    expect(draw(b, 20)).toEqual(draw(a, 20));
  });

  it('getState returns a copy, not a view of the live state', () => {
    const a = new Rng(3);
    const s = a.getState();
    s.words[0] ^= 1;
    const b = new Rng(3);
    expect(draw(a, 5)).toEqual(draw(b, 5));
  });

  it('setState rejects malformed states with a clear error', () => {
    const rng = new Rng(1);
    const bad: unknown[] = [
      { words: [1, 2, 3], spare: null },
      { words: [1, 2, 3, 4, 5], spare: null },
      { words: [1, 2, 3.5, 4], spare: null },
      { words: [1, 2, '3', 4], spare: null },
      { words: [1, 2, Number.NaN, 4], spare: null },
      { spare: null },
      {},
    ];
    for (const s of bad) expect(() => rng.setState(s as RngState)).toThrow(/four 32-bit integer words/);
    expect(() => rng.setState({ words: [0, 0, 0, 0], spare: null })).toThrow(/all zero/);
    expect(() => new Rng({ words: [0, 0, 0, 0], spare: null })).toThrow(/all zero/);
    // 2^32 wraps to 0, so this is all zero too.
    expect(() => rng.setState({ words: [2 ** 32, 0, 0, 0], spare: null })).toThrow(/all zero/);
    // The spare must be a finite number or null (a string or NaN would poison normal()).
    expect(() => rng.setState({ words: [1, 2, 3, 4], spare: 'x' as unknown as number })).toThrow(/spare/);
    expect(() => rng.setState({ words: [1, 2, 3, 4], spare: Number.NaN })).toThrow(/spare/);
    // A missing spare means none pending.
    rng.setState({ words: [1, 2, 3, 4] } as unknown as RngState);
    expect(rng.getState()).toEqual({ words: [1, 2, 3, 4], spare: null });
  });

  it('a rejected setState leaves the generator unchanged', () => {
    const a = new Rng(11);
    const b = new Rng(11);
    a.normal();
    b.normal();
    expect(() => a.setState({ words: [0, 0, 0, 0], spare: null })).toThrow();
    expect(() => a.setState({ words: [1, 2, 3], spare: 0.5 })).toThrow();
    expect(() => a.setState({ words: [5, 6, 7, 8], spare: Number.NaN })).toThrow();
    expect(a.getState()).toEqual(b.getState());
    expect(draw(a, 10)).toEqual(draw(b, 10));
  });
});

describe('Rng: distributions', () => {
  it('uniform() lies in [0, 1) with mean ≈ ½', () => {
    const rng = new Rng(8);
    const n = 100_000;
    let sum = 0;
    let min = 1;
    let max = 0;
    for (let i = 0; i < n; i++) {
      const u = rng.uniform();
      sum += u;
      min = Math.min(min, u);
      max = Math.max(max, u);
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    // Standard error of the mean of U(0,1): 1/√(12n) ≈ 9.1e-4; 5 SE ≈ 4.6e-3 (two-sided
    // probability ≈ 6e-7 of a false alarm for a fresh seed; the seed is fixed, so deterministic).
    expect(Math.abs(sum / n - 0.5)).toBeLessThanOrEqual(5 / Math.sqrt(12 * n));
    expect(min).toBeLessThan(1e-3);
    expect(max).toBeGreaterThan(1 - 1e-3);
  });

  it('uniform() maps the extreme words to 0 and to the largest double below 1', () => {
    const rng = new Rng(1);
    rng.nextUint32 = () => 0;
    expect(rng.uniform()).toBe(0);
    rng.nextUint32 = () => 0xffffffff;
    expect(rng.uniform()).toBeLessThan(1);
    expect(rng.uniform()).toBe(1 - 2 ** -32);
    expect(rng.int(10)).toBe(9);
  });

  it('normal() over 200k draws has mean ≈ 0 and variance ≈ 1', () => {
    const rng = new Rng(12345);
    const n = 200_000;
    let s1 = 0;
    let s2 = 0;
    let s4 = 0;
    for (let i = 0; i < n; i++) {
      const z = rng.normal();
      s1 += z;
      s2 += z * z;
      s4 += z ** 4;
    }
    const mean = s1 / n;
    const variance = s2 / n - mean * mean;
    // Standard errors for N(0, 1): mean 1/√n ≈ 2.2e-3, variance √(2/n) ≈ 3.2e-3, fourth moment
    // √(96/n) ≈ 2.2e-2 (Var z⁴ = 105 − 9). We allow 5 SE each: a false alarm has probability
    // ≈ 6e-7 per statistic for a fresh seed, while a wrong scale (e.g. a missing √2 or a dropped
    // sin half) moves them by far more.
    expect(Math.abs(mean)).toBeLessThanOrEqual(5 / Math.sqrt(n));
    expect(Math.abs(variance - 1)).toBeLessThanOrEqual(5 * Math.sqrt(2 / n));
    expect(Math.abs(s4 / n - 3)).toBeLessThanOrEqual(5 * Math.sqrt(96 / n));
  });

  it('normal() pairs are uncorrelated (cos and sin halves)', () => {
    const rng = new Rng(77);
    const n = 100_000;
    let sxy = 0;
    for (let i = 0; i < n; i++) sxy += rng.normal() * rng.normal();
    // E[z1·z2] = 0 with SE 1/√n ≈ 3.2e-3; 5 SE.
    expect(Math.abs(sxy / n)).toBeLessThanOrEqual(5 / Math.sqrt(n));
  });

  it('int(n) stays in [0, n), hits every value, and is roughly uniform', () => {
    const rng = new Rng(4);
    const counts = new Array(7).fill(0);
    const draws = 70_000;
    let outside = 0;
    for (let i = 0; i < draws; i++) {
      const k = rng.int(7);
      if (Number.isInteger(k) && k >= 0 && k < 7) counts[k]++;
      else outside++;
    }
    expect(outside).toBe(0);
    // Each count is Binomial(70000, 1/7): mean 10000, SD ≈ 92.6; 5 SD ≈ 463.
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThanOrEqual(5 * Math.sqrt(draws * (1 / 7) * (6 / 7)));
    expect(new Rng(4).int(1)).toBe(0);
  });

  it('normals(n) equals n successive normal() calls rounded to float32', () => {
    const a = new Rng(31);
    const b = new Rng(31);
    const v = a.normals(11);
    expect(v).toBeInstanceOf(Float32Array);
    expect(Array.from(v)).toEqual(Array.from({ length: 11 }, () => Math.fround(b.normal())));
    expect(a.getState()).toEqual(b.getState());
  });

  it('normalTensor(shape) is a float32 tensor of the same numbers', () => {
    const a = new Rng(9);
    const b = new Rng(9);
    const t = a.normalTensor([2, 3, 4]);
    expect(t.shape).toEqual([2, 3, 4]);
    expect(t.dtype).toBe('float32');
    expect(Array.from(t.dataSync())).toEqual(Array.from(b.normals(24)));
    t.dispose();
  });
});
