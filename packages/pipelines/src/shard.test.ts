import { describe, expect, it } from 'vitest';
import { parseShard, shardOf, shardRange } from './shard.js';

describe('--shard i/n', () => {
  it('parses i/n and refuses anything else', () => {
    expect(parseShard('2/3')).toEqual({ index: 2, count: 3 });
    for (const bad of ['3/3', '1', '-1/2', '1/0', 'a/b', '0/2/1'])
      expect(() => parseShard(bad)).toThrow(/--shard must be i\/n with 0 ≤ i < n/);
  });

  it('ranges and strides take every item exactly once, in order', async () => {
    for (const total of [0, 1, 5, 7, 100])
      for (const count of [1, 2, 3, 8]) {
        const ranges = Array.from({ length: count }, (_, index) => shardRange(total, { index, count }));
        expect(ranges[0].from).toBe(0);
        expect(ranges[count - 1].to).toBe(total);
        ranges.slice(1).forEach((r, i) => expect(r.from).toBe(ranges[i].to));
        const strided: number[] = [];
        for (let index = 0; index < count; index++)
          for await (const k of shardOf(
            Array.from({ length: total }, (_, k) => k),
            { index, count },
          ))
            strided.push(k);
        expect(strided.sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, k) => k));
      }
  });
});
