import { DataError, isUserError } from '@matryoshka-ts/core';
import { describe, expect, it } from 'vitest';
import { shardOrder } from './shard-order.js';

describe('shardOrder', () => {
  it('gives the ranks disjoint shards that together cover every shard once per epoch', () => {
    for (const [shards, world] of [
      [10, 1],
      [10, 3],
      [16, 4],
      [7, 7],
      [100, 8],
    ]) {
      for (let epoch = 0; epoch < 3; epoch++) {
        const parts = Array.from({ length: world }, (_, rank) => shardOrder(shards, 42, epoch, rank, world));
        const all = parts.flat();
        expect(all.length).toBe(shards);
        expect(new Set(all).size).toBe(shards);
        expect([...all].sort((a, b) => a - b)).toEqual(Array.from({ length: shards }, (_, i) => i));
        // Balanced: the ranks' counts differ by at most one.
        const counts = parts.map((p) => p.length);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      }
    }
  });

  it('is a function of seed and epoch: the same on every call, different across epochs and seeds', () => {
    expect(shardOrder(50, 1, 0)).toEqual(shardOrder(50, 1, 0));
    expect(shardOrder(50, 1, 3, 2, 4)).toEqual(shardOrder(50, 1, 3, 2, 4));
    expect(shardOrder(50, 1, 0)).not.toEqual(shardOrder(50, 1, 1));
    expect(shardOrder(50, 1, 0)).not.toEqual(shardOrder(50, 2, 0));
    // Every rank sees the same permutation: rank r's shards are the r-th, (r+w)-th, … of it.
    const whole = shardOrder(50, 9, 4);
    expect(shardOrder(50, 9, 4, 1, 3)).toEqual(whole.filter((_, i) => i % 3 === 1));
  });

  it('refuses more processes than shards, and bad ranks, with a clear message', () => {
    expect(() => shardOrder(3, 0, 0, 0, 4)).toThrow(/4 processes but only 3 shards/);
    expect(() => shardOrder(0, 0, 0, 0, 1)).toThrow(/only 0 shards/);
    expect(() => shardOrder(8, 0, 0, 4, 4)).toThrow(/rank must be an integer in \[0, 4\)/);
    expect(() => shardOrder(8, 0, 0, 0, 0)).toThrow(/world size must be a positive integer/);
  });

  it('too few shards is a DataError (DATA_INVALID); a bad rank stays a plain Error (the caller checks it)', () => {
    expect(() => shardOrder(3, 0, 0, 0, 4)).toThrow(DataError);
    expect(() => shardOrder(3, 0, 0, 0, 4)).toThrow(expect.objectContaining({ code: 'DATA_INVALID' }));
    let caught: unknown;
    try {
      shardOrder(8, 0, 0, 4, 4);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(Error);
    expect(isUserError(caught)).toBe(false);
  });
});
