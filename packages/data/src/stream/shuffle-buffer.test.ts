import { describe, expect, it } from 'vitest';
import { Rng } from '@matryoshka-ts/core';
import { ShuffleBuffer } from './shuffle-buffer.js';

/** Pushes 0…n−1 through a buffer of `capacity`, then drains it. */
function shuffled(n: number, capacity: number, seed: number): number[] {
  const buffer = new ShuffleBuffer<number>(capacity, new Rng(seed));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const emitted = buffer.push(i);
    if (emitted !== undefined) out.push(emitted);
  }
  for (let v = buffer.drain(); v !== undefined; v = buffer.drain()) out.push(v);
  return out;
}

describe('ShuffleBuffer', () => {
  it('emits a permutation of its input, determined by the seed', () => {
    for (const [n, k] of [
      [100, 10],
      [100, 1000],
      [5, 5],
      [1, 3],
      [0, 4],
    ]) {
      const out = shuffled(n, k, 7);
      expect([...out].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(shuffled(n, k, 7)).toEqual(out);
    }
    expect(shuffled(100, 10, 7)).not.toEqual(shuffled(100, 10, 8));
    expect(shuffled(100, 10, 7)).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('holds at most `capacity` items: an item leaves no later than capacity pushes after it came', () => {
    const out = shuffled(1000, 16, 3);
    // The j-th emission happens at push j + 16 at the latest, so it is one of the first j + 16 items.
    out.forEach((v, j) => expect(v).toBeLessThanOrEqual(j + 16));
  });

  it('passes items through in order with capacity 0 or 1', () => {
    expect(shuffled(10, 0, 1)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(shuffled(10, 1, 1)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(() => new ShuffleBuffer(-1, new Rng(0))).toThrow(/capacity/);
  });
});
