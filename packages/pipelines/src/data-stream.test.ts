// The trainer on a streamed source: a generated img2dataset (webdataset) fixture with a corrupt
// image, trained through the StreamBatcher, resumed exactly; and `dataCheck`.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { encodePng } from '@matryoshka-ts/data';
import { tar } from '@matryoshka-ts/test-utils';
import { type TrainConfigInput, parseTrainConfig } from './config.js';
import { dataCheck } from './data-check.js';
import { TRAIN_PRESETS } from './train-presets.js';
import { loadCheckpoint } from './run-checkpoint.js';
import type { StepMetrics } from './run-log.js';
import { train } from './train.js';

// The pipelines run on the active backend; the deterministic pure-JS cpu backend here.
beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const dir = mkdtempSync(join(tmpdir(), 'mdm-stream-'));
const shards = join(dir, 'shards');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A 12×10 PNG whose colour depends on `i`. */
function png(i: number): Uint8Array {
  const data = new Uint8Array(12 * 10 * 3);
  for (let p = 0; p < data.length; p += 3) data.set([(i * 40) % 256, (p * 3) % 256, 255 - ((i * 25) % 256)], p);
  return encodePng({ width: 12, height: 10, data });
}

beforeAll(() => {
  // Two img2dataset shards of 6 samples; sample 00001_0000 is a corrupt image and 00001_0005 has no caption.
  mkdirSync(shards);
  for (let s = 0; s < 2; s++) {
    const members = [];
    for (let i = 0; i < 6; i++) {
      const key = `0000${s}_000${i}`;
      members.push({
        name: `${key}.png`,
        data: s === 1 && i === 0 ? new TextEncoder().encode('not a png at all') : png(s * 6 + i),
      });
      if (!(s === 1 && i === 5)) members.push({ name: `${key}.txt`, data: `emoji number ${s * 6 + i}` });
      members.push({ name: `${key}.json`, data: '{}' });
    }
    writeFileSync(join(shards, `0000${s}.tar`), tar(members));
  }
});

// The micro preset, trained on its 4 px inner level only (data decoded at 8 px).
const micro: TrainConfigInput = {
  ...TRAIN_PRESETS.micro,
  data: { source: 'cc12m', path: shards, shuffleBuffer: 4, workers: 1, flip: true },
  phases: [{ resolution: 4, batchSize: 2, steps: 100 }],
  sampling: { n: 2, steps: 1, sampler: 'ddim' },
  backend: 'cpu',
};

const rows = (run: string) =>
  readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as StepMetrics);

describe('train on a streamed source', () => {
  it('trains past the corrupt image (counted in metrics.jsonl); resumed losses equal uninterrupted ones', async () => {
    const config = parseTrainConfig(micro);
    const whole = join(dir, 'whole');
    // 7 steps × 2 = 14 images: past the 10 good ones of epoch 0, so the corrupt one was passed.
    await train(config, { out: whole, steps: 7 });
    const wholeRows = rows(whole);
    expect(wholeRows).toHaveLength(7);
    expect(wholeRows[6].dataSkipped).toEqual({ 'corrupt image': 1, 'missing caption': 1 });
    const split = join(dir, 'split');
    await train(config, { out: split, steps: 3 });
    expect(loadCheckpoint(join(split, 'checkpoint.safetensors')).progress.data).toEqual({
      epoch: 0,
      cursor: expect.any(Number),
    });
    await train(config, { out: split, resume: true, steps: 7 });
    expect(rows(split).map((r) => [r.step, r.loss])).toEqual(wholeRows.map((r) => [r.step, r.loss]));
    // The skip totals continue across the resume: every row as in the uninterrupted run.
    expect(rows(split).map((r) => r.dataSkipped)).toEqual(wholeRows.map((r) => r.dataSkipped));
    expect(readFileSync(join(split, 'samples.txt'), 'utf8')).toMatch(/^1\. emoji number \d+\n2\. emoji number \d+\n$/);
  }, 120_000);

  it('refuses a streamed source without its files, naming the field', async () => {
    expect(() => parseTrainConfig({ ...micro, data: { source: 'imagenet' } })).toThrow(
      /config: data\.path: required for data\.source imagenet/,
    );
    expect(() => parseTrainConfig({ ...micro, data: { source: 'webvid', path: 'x.csv' } })).toThrow(
      /config: data\.videos: required for data\.source webvid/,
    );
    expect(() => parseTrainConfig({ ...micro, data: { source: 'cc12m', path: shards, synsets: 'x' } })).toThrow(
      /config: data\.synsets: not used by data\.source cc12m/,
    );
    expect(() => parseTrainConfig({ ...micro, data: { source: 'cc12m', path: shards, rank: 2, world: 2 } })).toThrow(
      /data\.rank: 2 must be below data\.world/,
    );
    expect(() => parseTrainConfig({ ...micro, data: { source: 'mnist' } })).toThrow(/config: data\.source:/);
    // More processes than shards, and a path that does not exist, fail at start with a clear message.
    await expect(
      train(parseTrainConfig({ ...micro, data: { ...micro.data, rank: 0, world: 3 } }), { out: join(dir, 'never') }),
    ).rejects.toThrow(/3 processes but only 2 shards/);
    await expect(
      train(parseTrainConfig({ ...micro, data: { source: 'cc12m', path: join(dir, 'nope') } }), {
        out: join(dir, 'never'),
      }),
    ).rejects.toThrow(/nope/);
  });
});

describe('dataCheck', () => {
  it('reads every sample once: samples read, skips by reason, images per second', async () => {
    const result = await dataCheck({ source: 'cc12m', path: join(shards, '{00000..00001}.tar'), size: 16, workers: 1 });
    expect(result).toMatchObject({ read: 10, skipped: { 'corrupt image': 1, 'missing caption': 1 } });
    expect(result.images_per_s).toBeGreaterThan(0);
  }, 60_000);

  it('--shard i/n: the shards of the source split n ways add up to the whole check', async () => {
    const path = join(shards, '{00000..00001}.tar');
    for (const count of [2, 3]) {
      const parts = [];
      for (let index = 0; index < count; index++)
        parts.push(await dataCheck({ source: 'cc12m', path, size: 16, workers: 1, shard: { index, count } }));
      expect(parts.reduce((n, p) => n + p.read, 0)).toBe(10);
      const skipped: Record<string, number> = {};
      for (const p of parts) for (const [k, v] of Object.entries(p.skipped)) skipped[k] = (skipped[k] ?? 0) + v;
      expect(skipped).toEqual({ 'corrupt image': 1, 'missing caption': 1 });
      expect(parts.map((p) => p.shard)).toEqual(Array.from({ length: count }, (_, i) => `${i}/${count}`));
      // Two tar files over three workers: one reads none of them, the others one each.
      expect(parts.map((p) => p.source_shards!.to - p.source_shards!.from).sort()).toEqual(
        count === 2 ? [1, 1] : [0, 1, 1],
      );
    }
  }, 60_000);

  it('fails at start on a missing path, and honours --limit', async () => {
    await expect(dataCheck({ source: 'cc12m', path: join(dir, 'missing-shards') })).rejects.toThrow(/missing-shards/);
    await expect(dataCheck({ source: 'imagenet' })).rejects.toThrow(/needs a path/);
    const limited = await dataCheck({ source: 'cc12m', path: shards, size: 8, limit: 3, workers: 1 });
    expect(limited.read).toBe(3);
  });
});
