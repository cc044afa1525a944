import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, isUserError } from '@matryoshka-ts/core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  fillLatentCache,
  LATENT_CACHE_FORMAT,
  LATENT_CACHE_VERSION,
  type LatentCacheOptions,
  latentPartRange,
  openLatentCache,
} from './latent-cache.js';
import { latentCacheParts, mergeLatentCacheParts } from './latent-cache-parts.js';

const tmp = mkdtempSync(join(tmpdir(), 'latent-cache-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let roots = 0;
/** A fresh cache root per test. */
const newRoot = () => join(tmp, `root-${roots++}`);

const SHAPE = [2, 3, 4] as const;
const SIZE = 2 * 3 * 4;
const RECORD = 8 * SIZE + 4;
const KEY = '0123456789abcdef0123456789abcdef';
const opts = (over: Partial<LatentCacheOptions> = {}): LatentCacheOptions => ({
  key: KEY,
  count: 12,
  shape: SHAPE,
  info: { autoencoder: 'kl-f8-test' },
  ...over,
});

/** Deterministic stand-in posteriors of sample i. */
function sample(i: number): { mean: Float32Array; logvar: Float32Array } {
  const mean = new Float32Array(SIZE);
  const logvar = new Float32Array(SIZE);
  for (let j = 0; j < SIZE; j++) {
    mean[j] = Math.sin(i * 31 + j) * 3.5;
    logvar[j] = -2 - 0.01 * i - 0.001 * j;
  }
  return { mean, logvar };
}

/** An encode callback that records its calls. */
function encoder(failFrom = Number.POSITIVE_INFINITY) {
  const calls: Array<[number, number]> = [];
  const encode = async (start: number, n: number) => {
    calls.push([start, n]);
    if (start >= failFrom) throw new Error('interrupted');
    const mean = new Float32Array(n * SIZE);
    const logvar = new Float32Array(n * SIZE);
    for (let b = 0; b < n; b++) {
      const s = sample(start + b);
      mean.set(s.mean, b * SIZE);
      logvar.set(s.logvar, b * SIZE);
    }
    return { mean, logvar };
  };
  return { calls, encode };
}

const dataPath = (root: string) => join(root, KEY, 'latents.bin');
const metaPath = (root: string) => join(root, KEY, 'meta.json');

/** The bytes of latents.bin after an uninterrupted fill of `count` samples. */
async function referenceBytes(count = 12): Promise<Buffer> {
  const root = newRoot();
  const cache = openLatentCache(root, opts({ count }));
  await fillLatentCache(cache, encoder().encode, { batchSize: 5 });
  cache.close();
  return readFileSync(dataPath(root));
}

/** A cache at a fresh root holding samples 0 … n - 1 of 12, closed. */
async function partial(n: number): Promise<string> {
  const root = newRoot();
  const cache = openLatentCache(root, opts());
  for (let i = 0; i < n; i++) cache.append(sample(i).mean, sample(i).logvar);
  cache.close();
  return root;
}

/** The DataError that `fn` throws. */
function dataError(fn: () => unknown): DataError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DataError);
    expect(isUserError(error)).toBe(true);
    expect((error as DataError).code).toBe('DATA_INVALID');
    return error as DataError;
  }
  throw new Error('expected a DataError');
}

describe('latent cache', () => {
  it('round-trips values and writes meta.json', async () => {
    const root = newRoot();
    const cache = openLatentCache(root, opts());
    expect(cache.complete).toBe(0);
    expect(cache.done).toBe(false);
    expect(cache.warnings).toEqual([]);
    expect(cache.recordBytes).toBe(RECORD);
    const progress: Array<[number, number]> = [];
    const { calls, encode } = encoder();
    const encoded = await fillLatentCache(cache, encode, {
      batchSize: 5,
      onProgress: (done, total) => progress.push([done, total]),
    });
    expect(encoded).toBe(12);
    expect(calls).toEqual([
      [0, 5],
      [5, 5],
      [10, 2],
    ]);
    expect(progress).toEqual([
      [5, 12],
      [10, 12],
      [12, 12],
    ]);
    expect(cache.done).toBe(true);
    for (let i = 0; i < 12; i++) expect(cache.read(i)).toEqual(sample(i));
    const batch = cache.readBatch([7, 2]);
    expect(batch.shape).toEqual([2, ...SHAPE]);
    expect(batch.mean).toEqual(new Float32Array([...sample(7).mean, ...sample(2).mean]));
    expect(batch.logvar).toEqual(new Float32Array([...sample(7).logvar, ...sample(2).logvar]));
    expect(() => cache.read(12)).toThrow(/sample 12 is not in the cache/);
    cache.close();

    expect(statSync(dataPath(root)).size).toBe(12 * RECORD);
    expect(JSON.parse(readFileSync(metaPath(root), 'utf8'))).toEqual({
      format: LATENT_CACHE_FORMAT,
      version: LATENT_CACHE_VERSION,
      key: KEY,
      count: 12,
      shape: [...SHAPE],
      info: { autoencoder: 'kl-f8-test' },
    });

    const again = openLatentCache(root, opts({ info: undefined }));
    expect(again.done).toBe(true);
    expect(again.info).toEqual({ autoencoder: 'kl-f8-test' });
    for (let i = 0; i < 12; i++) expect(again.read(i)).toEqual(sample(i));
    const more = encoder();
    expect(await fillLatentCache(again, more.encode, { batchSize: 4 })).toBe(0);
    expect(more.calls).toEqual([]);
    again.close();
  });

  it('resumes an interrupted fill, encoding only the missing samples', async () => {
    const root = newRoot();
    const first = openLatentCache(root, opts());
    await expect(fillLatentCache(first, encoder(5).encode, { batchSize: 5 })).rejects.toThrow('interrupted');
    expect(first.complete).toBe(5);
    first.close();

    const cache = openLatentCache(root, opts());
    expect(cache.complete).toBe(5);
    expect(cache.droppedTail).toBe(0);
    const { calls, encode } = encoder();
    expect(await fillLatentCache(cache, encode, { batchSize: 4 })).toBe(7);
    expect(calls).toEqual([
      [5, 4],
      [9, 3],
    ]);
    cache.close();
    expect(readFileSync(dataPath(root)).equals(await referenceBytes())).toBe(true);
  });

  it('drops a torn tail (a partial last record) and refills it identically', async () => {
    const root = await partial(8);
    truncateSync(dataPath(root), 7 * RECORD + Math.floor(RECORD / 2));
    const cache = openLatentCache(root, opts());
    expect(cache.complete).toBe(7);
    expect(cache.droppedTail).toBe(Math.floor(RECORD / 2));
    expect(cache.warnings).toHaveLength(1);
    expect(cache.warnings[0]).toMatch(/torn tail/);
    expect(cache.warnings[0]).toContain(dataPath(root));
    expect(statSync(dataPath(root)).size).toBe(7 * RECORD);
    for (let i = 0; i < 7; i++) expect(cache.read(i)).toEqual(sample(i));
    const { calls, encode } = encoder();
    await fillLatentCache(cache, encode, { batchSize: 5 });
    expect(calls[0]).toEqual([7, 5]);
    cache.close();
    expect(readFileSync(dataPath(root)).equals(await referenceBytes())).toBe(true);
  });

  it('drops a last complete record whose checksum fails as a torn write', async () => {
    const root = await partial(6);
    const bytes = readFileSync(dataPath(root));
    bytes[5 * RECORD + 17] ^= 0x40;
    writeFileSync(dataPath(root), bytes);
    const cache = openLatentCache(root, opts());
    expect(cache.complete).toBe(5);
    expect(cache.droppedTail).toBe(RECORD);
    expect(cache.warnings[0]).toMatch(/record 5 failed its checksum/);
    expect(statSync(dataPath(root)).size).toBe(5 * RECORD);
    await fillLatentCache(cache, encoder().encode, { batchSize: 3 });
    cache.close();
    expect(readFileSync(dataPath(root)).equals(await referenceBytes())).toBe(true);
  });

  it('drops a bad last record together with a partial one after it', async () => {
    const root = await partial(6);
    const bytes = readFileSync(dataPath(root)).subarray(0, 5 * RECORD + 10);
    bytes[4 * RECORD + 3] ^= 0x01;
    writeFileSync(dataPath(root), bytes);
    const cache = openLatentCache(root, opts());
    expect(cache.complete).toBe(4);
    expect(cache.droppedTail).toBe(RECORD + 10);
    cache.close();
  });

  it('refuses a damaged earlier record, naming it and the file', async () => {
    const root = await partial(6);
    const bytes = readFileSync(dataPath(root));
    bytes[2 * RECORD + 40] ^= 0x01;
    writeFileSync(dataPath(root), bytes);
    const error = dataError(() => openLatentCache(root, opts()));
    expect(error.message).toContain('record 2');
    expect(error.message).toContain(dataPath(root));
    expect(error.message).toMatch(/delete .* to rebuild/);
    // Nothing was truncated: the file is left for inspection.
    expect(statSync(dataPath(root)).size).toBe(6 * RECORD);
  });

  it('refuses a latents.bin longer than count records', async () => {
    const root = await partial(12);
    const bytes = readFileSync(dataPath(root));
    writeFileSync(dataPath(root), Buffer.concat([bytes, bytes.subarray(0, 8)]));
    const error = dataError(() => openLatentCache(root, opts()));
    expect(error.message).toContain(dataPath(root));
    expect(error.message).toMatch(/longer than the 12 records/);
  });

  it('refuses a meta.json that does not match (shape, count, key, format, version)', async () => {
    const root = await partial(3);
    const shape = dataError(() => openLatentCache(root, opts({ shape: [2, 3, 8] })));
    expect(shape.message).toContain(metaPath(root));
    expect(shape.message).toMatch(/shape \[2,3,4\].*shape \[2,3,8\]/);
    expect(shape.message).toMatch(/delete .* to rebuild/);
    const count = dataError(() => openLatentCache(root, opts({ count: 13 })));
    expect(count.message).toMatch(/count 12.*count 13/);

    const meta = JSON.parse(readFileSync(metaPath(root), 'utf8'));
    writeFileSync(metaPath(root), JSON.stringify({ ...meta, key: 'ffffffffffffffff' }));
    expect(dataError(() => openLatentCache(root, opts())).message).toMatch(/key "ffffffffffffffff"/);
    writeFileSync(metaPath(root), JSON.stringify({ ...meta, format: 'other' }));
    expect(dataError(() => openLatentCache(root, opts())).message).toMatch(/format "other"/);
    writeFileSync(metaPath(root), JSON.stringify({ ...meta, version: 2 }));
    expect(dataError(() => openLatentCache(root, opts())).message).toMatch(/version 2; this code reads version 1/);
    // The records were left alone.
    expect(statSync(dataPath(root)).size).toBe(3 * RECORD);
  });

  it('refuses a corrupt meta.json', async () => {
    const root = await partial(3);
    writeFileSync(metaPath(root), '{"format": "mdm-latent-ca');
    const error = dataError(() => openLatentCache(root, opts()));
    expect(error.message).toContain(metaPath(root));
    expect(error.message).toMatch(/not valid JSON/);
    expect(error.message).toMatch(/delete .* to rebuild/);
    writeFileSync(metaPath(root), '[1, 2]');
    expect(dataError(() => openLatentCache(root, opts())).message).toMatch(/not a JSON object/);
  });

  it('refuses records without meta.json', async () => {
    const root = await partial(3);
    rmSync(metaPath(root));
    const error = dataError(() => openLatentCache(root, opts()));
    expect(error.message).toContain(metaPath(root));
  });

  it('rejects appends of the wrong length, non-finite values, or past count', () => {
    const root = newRoot();
    const cache = openLatentCache(root, opts({ count: 2 }));
    const good = sample(0);
    expect(dataError(() => cache.append(new Float32Array(SIZE - 1), good.logvar)).message).toMatch(
      /mean of sample 0 must be a Float32Array of 2×3×4 = 24 values, got 23 values/,
    );
    expect(() => cache.append(good.mean, new Float32Array(SIZE + 1))).toThrow(/logvar of sample 0/);
    const nan = good.mean.slice();
    nan[3] = Number.NaN;
    expect(dataError(() => cache.append(nan, good.logvar)).message).toMatch(/non-finite/);
    expect(cache.complete).toBe(0);
    expect(existsSync(dataPath(root)) ? statSync(dataPath(root)).size : 0).toBe(0);
    cache.append(good.mean, good.logvar);
    cache.append(sample(1).mean, sample(1).logvar);
    expect(cache.done).toBe(true);
    expect(dataError(() => cache.append(good.mean, good.logvar)).message).toMatch(/already holds all 2 records/);
    cache.close();
    expect(() => cache.append(good.mean, good.logvar)).toThrow(/after close/);
    expect(cache.read(1)).toEqual(sample(1));
  });

  it('rejects an encode callback that returns the wrong length, storing nothing of that batch', async () => {
    const root = newRoot();
    const cache = openLatentCache(root, opts());
    const encode = (start: number, n: number) => ({
      mean: new Float32Array(n * SIZE),
      logvar: new Float32Array(start === 0 ? n * SIZE : 1),
    });
    await expect(fillLatentCache(cache, encode, { batchSize: 4 })).rejects.toThrow(/encode\(4, 4\) returned a logvar/);
    expect(cache.complete).toBe(4);
    await expect(fillLatentCache(cache, encode, { batchSize: 0 })).rejects.toThrow(/batchSize/);
    cache.close();
  });

  it('validates options and handles an empty data set', () => {
    expect(() => openLatentCache(newRoot(), opts({ key: '../escape' }))).toThrow(/hex digest/);
    expect(() => openLatentCache(newRoot(), opts({ count: -1 }))).toThrow(/count/);
    expect(() => openLatentCache(newRoot(), opts({ shape: [2, 0, 4] }))).toThrow(/shape/);
    const empty = openLatentCache(newRoot(), opts({ count: 0 }));
    expect(empty.done).toBe(true);
    empty.close();
  });
});

describe('latent cache parts (a fill split over workers)', () => {
  /** Fills part i of n at `root` (12 samples), as worker i would; closed. */
  async function fillPart(root: string, index: number, n = 3, failFrom?: number) {
    const part = openLatentCache(root, opts({ part: latentPartRange(12, index, n) }));
    const { calls, encode } = encoder(failFrom);
    const filled = fillLatentCache(part, encode, { batchSize: 3 });
    if (failFrom === undefined) await filled;
    else await expect(filled).rejects.toThrow('interrupted');
    part.close();
    return { part, calls };
  }

  it('n = 3 parts merged in shard order give the bytes one process writes, and are deleted', async () => {
    const root = newRoot();
    // Out of order, as a job array's tasks finish.
    for (const i of [2, 0, 1]) await fillPart(root, i);
    const { part: one, calls } = await fillPart(root, 1);
    // Run twice: the complete part is kept as it is.
    expect(calls).toEqual([]);
    expect([one.first, one.records, one.complete]).toEqual([4, 4, 4]);
    expect(latentCacheParts(join(root, KEY))).toEqual([0, 1, 2].map((index) => ({ index, count: 3 })));
    expect(JSON.parse(readFileSync(join(root, KEY, 'part-1-of-3.json'), 'utf8')).part).toEqual({
      index: 1,
      count: 3,
      from: 4,
      to: 8,
    });

    const cache = openLatentCache(root, opts());
    const report = await mergeLatentCacheParts(cache);
    expect(report).toEqual({
      merged: ['0/3', '1/3', '2/3'],
      copied: 12,
      encoded: 0,
      missing: [],
      foreign: [],
      incomplete: [],
    });
    expect(cache.done).toBe(true);
    cache.close();
    expect(readFileSync(dataPath(root)).equals(await referenceBytes())).toBe(true);
    const single = newRoot();
    const whole = openLatentCache(single, opts());
    await fillLatentCache(whole, encoder().encode, { batchSize: 5 });
    whole.close();
    expect(readFileSync(metaPath(root)).equals(readFileSync(metaPath(single)))).toBe(true);
    expect(readdirSync(join(root, KEY)).sort()).toEqual(['latents.bin', 'meta.json']);
  });

  it('reports a missing part, stops before its samples, and with encode fills them and goes on', async () => {
    const root = newRoot();
    await fillPart(root, 0);
    await fillPart(root, 2);
    const cache = openLatentCache(root, opts());
    const report = await mergeLatentCacheParts(cache);
    expect(report).toMatchObject({ merged: ['0/3'], copied: 4, missing: ['1/3'], foreign: [], incomplete: [] });
    expect(cache.complete).toBe(4);
    expect(existsSync(join(root, KEY, 'part-2-of-3.bin'))).toBe(true);
    expect(existsSync(join(root, KEY, 'part-0-of-3.bin'))).toBe(false);

    const { calls, encode } = encoder();
    const filled = await mergeLatentCacheParts(cache, { encode, batchSize: 5 });
    expect(filled).toMatchObject({ merged: ['2/3'], copied: 4, encoded: 4, missing: ['1/3'] });
    expect(calls).toEqual([[4, 4]]);
    cache.close();
    expect(readFileSync(dataPath(root)).equals(await referenceBytes())).toBe(true);
  });

  it('leaves an unfinished part (its torn tail too) alone and reports it', async () => {
    const root = newRoot();
    await fillPart(root, 0);
    await fillPart(root, 1, 3, 7);
    const bin = join(root, KEY, 'part-1-of-3.bin');
    appendFileSync(bin, Buffer.alloc(10, 7));
    const size = statSync(bin).size;
    const cache = openLatentCache(root, opts());
    const report = await mergeLatentCacheParts(cache);
    expect(report).toMatchObject({ merged: ['0/3'], copied: 7, missing: ['2/3'], incomplete: ['1/3: 3 of 4 records'] });
    // Read-only: a worker still writing the part is never truncated under.
    expect(statSync(bin).size).toBe(size);
    expect(cache.complete).toBe(7);
    cache.close();
  });

  it('reports a part of another cache (shape) as foreign and never merges it', async () => {
    const root = newRoot();
    const other = openLatentCache(root, opts({ shape: [1, 1, 4], part: latentPartRange(12, 0, 3) }));
    other.append(new Float32Array(4), new Float32Array(4));
    other.close();
    const cache = openLatentCache(root, opts());
    const report = await mergeLatentCacheParts(cache);
    expect(report.merged).toEqual([]);
    expect(report.foreign).toHaveLength(1);
    expect(report.foreign[0]).toMatch(/^0\/3: .*part-0-of-3\.json records shape \[1,1,4\]/);
    expect(report.missing).toEqual(['1/3', '2/3']);
    expect(cache.complete).toBe(0);
    cache.close();
    expect(() => openLatentCache(root, opts({ part: { index: 0, count: 3, from: 0, to: 5 } }))).toThrow(/part must be/);
  });
});
