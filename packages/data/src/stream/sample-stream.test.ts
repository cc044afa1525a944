import { describe, expect, it } from 'vitest';
import type { SampleRef } from '../sources/source.js';
import { SampleStream, type SampleStreamOptions } from './sample-stream.js';
import { fakeRef, fakeShards, memorySource } from './test-fixtures.js';

async function take(stream: SampleStream, n: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) keys.push((await stream.next()).key);
  return keys;
}

describe('SampleStream', () => {
  const source = memorySource(fakeShards(6, 7)); // 42 samples per epoch
  const options: SampleStreamOptions = { seed: 5, shuffleBuffer: 10 };

  it('emits every sample once per epoch, in an order that changes between epochs', async () => {
    const stream = new SampleStream(source, options);
    const first = await take(stream, 42);
    expect(stream.position).toEqual({ epoch: 0, cursor: 42 });
    const second = await take(stream, 42);
    expect(stream.position).toEqual({ epoch: 1, cursor: 42 });
    const all = fakeShards(6, 7)
      .flat()
      .map((r) => r.key)
      .sort();
    expect([...first].sort()).toEqual(all);
    expect([...second].sort()).toEqual(all);
    expect(second).not.toEqual(first);
    // The same seed gives the same order.
    expect(await take(new SampleStream(source, options), 42)).toEqual(first);
  });

  it(
    'resumes exactly: N samples, save the position, a new stream from it — ' +
      'the concatenation equals an uninterrupted run across an epoch boundary',
    async () => {
      const whole = await take(new SampleStream(source, options), 100);
      for (const n of [0, 1, 17, 41, 42, 43, 60, 84]) {
        const a = new SampleStream(source, options);
        const head = await take(a, n);
        const position = a.position;
        await a.close();
        const b = new SampleStream(source, { ...options, position: JSON.parse(JSON.stringify(position)) });
        expect([...head, ...(await take(b, 100 - n))], `split at ${n}`).toEqual(whole);
      }
    },
  );

  it('gives each rank disjoint samples that cover the epoch', async () => {
    const world = 3;
    const parts = await Promise.all(
      Array.from({ length: world }, async (_, rank) => {
        const stream = new SampleStream(source, { ...options, rank, world });
        // Each rank reads two shards of 7 this epoch.
        const keys = await take(stream, 14);
        expect(stream.position).toEqual({ epoch: 0, cursor: 14 });
        return keys;
      }),
    );
    const all = parts.flat();
    expect(new Set(all).size).toBe(42);
  });

  it('counts bad entries skipped while scanning, and not again when a resumed stream replays them', async () => {
    const refs: Array<Array<SampleRef | null>> = [
      [fakeRef(0, 0), null, fakeRef(0, 1)],
      [null, fakeRef(1, 0)],
    ];
    const bad = memorySource(refs);
    const stream = new SampleStream(bad, { seed: 1, shuffleBuffer: 0 });
    await take(stream, 3);
    expect(stream.skipped).toEqual({ 'missing caption': 2 });
    await take(stream, 3); // the second epoch scans both shards again
    expect(stream.skipped).toEqual({ 'missing caption': 4 });
    const resumed = new SampleStream(bad, { seed: 1, shuffleBuffer: 0, position: { epoch: 0, cursor: 3 } });
    await take(resumed, 1);
    expect(resumed.skipped).toEqual({ 'missing caption': 1 });
  });

  it(
    'fails with a clear message on an empty source, ' + 'a source of only bad entries, or a position past the epoch',
    async () => {
      expect(() => new SampleStream(memorySource([]), options)).toThrow(/no shards/);
      await expect(new SampleStream(memorySource([[], []]), options).next()).rejects.toThrow(
        /no samples to read in epoch 0/,
      );
      await expect(new SampleStream(memorySource([[null, null]]), options).next()).rejects.toThrow(
        /no samples to read in epoch 0 .*missing caption":2/,
      );
      expect(() => new SampleStream(source, { ...options, world: 7 })).toThrow(/7 processes but only 6 shards/);
      await expect(new SampleStream(source, { ...options, position: { epoch: 2, cursor: 50 } }).next()).rejects.toThrow(
        /cannot resume at epoch 2, sample 50: this epoch has only 42 samples/,
      );
    },
  );
});
