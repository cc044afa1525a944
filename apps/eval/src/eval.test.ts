import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@matryoshka-ts/backends';
import { readFidStats } from '@matryoshka-ts/metrics';
import { TRAIN_PRESETS, type TrainConfigInput, parseTrainConfig, train } from '@matryoshka-ts/pipelines';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curvesCommand } from './curves-command.js';
import { generateCommand, imagePath } from './generate-command.js';
import { clipCommand, fidCommand, statsCommand } from './metric-commands.js';
import { PROXY_NOTE } from './networks.js';
import { sweepCommand } from './sweep-command.js';
import { SMALL_PROXY } from './test-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-eval-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The trainer's micro preset (8 → 4 px) on the cpu backend, with a snapshot every 2 steps.
const micro: TrainConfigInput = {
  ...TRAIN_PRESETS.micro,
  data: { skinTones: false, categories: ['Smileys & Emotion'] },
  phases: [
    { resolution: 4, batchSize: 2, steps: 2 },
    { resolution: 8, batchSize: 2, steps: 4 },
  ],
  sampling: { n: 2, steps: 2, sampler: 'ddim', guidance: 2, threshold: 'clip' },
  snapshotEvery: 2,
  backend: 'cpu',
};
const run = join(dir, 'run');
const cache = join(dir, 'cache');
const networks = { cacheDir: cache, proxy: SMALL_PROXY };

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
  await train(parseTrainConfig(micro), { out: run });
}, 300_000);

describe('mdm-eval on a trained run (proxy networks)', () => {
  const samples = join(dir, 'samples');

  it('generate writes N PNGs, captions and settings, and resumes an interrupted run with the same images', async () => {
    const first = await generateCommand({ run, out: samples, n: 5, batch: 2, steps: 2 });
    expect(first.generated).toBe(5);
    expect(first.manifest).toMatchObject({ n: 5, resolution: 8, guidance: 2, steps: 2, step: 6 });
    const captions = readFileSync(join(samples, 'captions.txt'), 'utf8').trim().split('\n');
    expect(captions).toHaveLength(5);
    expect(captions.every((c) => c.length > 0)).toBe(true);
    const image2 = readFileSync(imagePath(samples, 2));
    rmSync(imagePath(samples, 2));
    const resumed = await generateCommand({ run, out: samples, n: 5, batch: 2, steps: 2 });
    // Only batch 1 (images 2 and 3) is made again, with its own seed: the same bytes.
    expect(resumed.generated).toBe(2);
    expect(readFileSync(imagePath(samples, 2)).equals(image2)).toBe(true);
    await expect(generateCommand({ run, out: samples, n: 5, batch: 2, steps: 2, guidance: 4 })).rejects.toThrow(
      /other settings \(guidance: 2 → 4\)/,
    );
  }, 120_000);

  it('stats, fid and clip report N, the reference, the networks and the proxy label', async () => {
    const ref = join(dir, 'samples-stats.npz');
    const stats = await statsCommand({ ...networks, images: samples, out: ref });
    expect(stats).toMatchObject({ n: 5, source: samples, proxy: true, note: PROXY_NOTE });
    expect(readFidStats(ref).dim).toBe(stats.dim);
    expect(JSON.parse(readFileSync(`${ref}.json`, 'utf8')).features).toBe(stats.features);

    // The samples against their own statistics: zero up to float64 square-root error.
    const self = await fidCommand({ ...networks, samples, reference: ref });
    expect(Math.abs(self.fid)).toBeLessThan(1e-6);
    expect(self).toMatchObject({
      n: 5,
      reference: { source: samples, n: 5, features: stats.features },
      features: stats.features,
      proxy: true,
    });
    const bundled = await fidCommand({ ...networks, samples, reference: 'bundled' });
    expect(bundled.fid).toBeGreaterThan(0);
    expect(bundled.reference.n).toBe(169);

    const clip = await clipCommand({ ...networks, samples });
    expect(clip).toMatchObject({ n: 5, definition: 'torchmetrics', proxy: true });
    expect(clip.clip_score).toBeGreaterThanOrEqual(0);
    expect(clip.clip_score).toBeLessThanOrEqual(100);
    const orig = await clipCommand({ ...networks, samples, definition: 'clipscore' });
    // Same cosines, other scale: 2.5 vs 100 (both clamp at 0 per pair).
    expect(orig.clip_score).toBeCloseTo((clip.clip_score / 100) * 2.5, 10);
  }, 300_000);

  it('fid refuses statistics computed with another network', async () => {
    const ref = join(dir, 'other.npz');
    await statsCommand({
      cacheDir: cache,
      proxy: { ...SMALL_PROXY, training: { ...SMALL_PROXY.training, steps: 2 } },
      images: samples,
      out: ref,
    });
    await expect(fidCommand({ ...networks, samples, reference: ref })).rejects.toThrow(
      /was computed with features proxy-clip-emoji#\w+, but these are proxy-clip-emoji#\w+/,
    );
  }, 120_000);

  it('sweep writes a table, a JSON report and a FID–CLIP plot over guidance weights', async () => {
    const out = join(dir, 'sweep');
    const result = await sweepCommand({ ...networks, run, guidance: [1, 3], n: 4, steps: 2, batch: 4, out });
    expect(result.rows.map((r) => r.guidance)).toEqual([1, 3]);
    for (const row of result.rows) {
      expect(Number.isFinite(row.fid) && row.fid > 0).toBe(true);
      expect(row.clip_score).not.toBeNull();
    }
    expect(result).toMatchObject({ n: 4, sampling_steps: 2, proxy: true, definition: 'torchmetrics' });
    const md = readFileSync(join(out, 'sweep.md'), 'utf8');
    expect(md).toMatch(/\| 1 \| \d+\.\d{3} \| \d+\.\d{3} \|/);
    expect(md).toMatch(/PROXY/);
    const svg = readFileSync(join(out, 'sweep.svg'), 'utf8');
    expect(svg).toMatch(/w=1/);
    expect(svg).toMatch(/w=3/);
    expect(svg).toMatch(/PROXY/);
    // A second sweep with one more weight makes only the new samples.
    const before = statSync(imagePath(join(out, 'w-1'), 0)).mtimeMs;
    const more = await sweepCommand({
      ...networks,
      run,
      guidance: [1, 3, 5],
      n: 4,
      steps: 2,
      batch: 4,
      out,
      clip: 'none',
    });
    expect(statSync(imagePath(join(out, 'w-1'), 0)).mtimeMs).toBe(before);
    expect(more.rows[0].fid).toBeCloseTo(result.rows[0].fid, 10);
    expect(more.rows.every((r) => r.clip_score === null)).toBe(true);
    expect(readFileSync(join(out, 'sweep.svg'), 'utf8')).toMatch(/FID over guidance weights/);
  }, 300_000);

  it('curves measures each snapshot that has the resolution, plus the final checkpoint', async () => {
    const out = join(dir, 'curves');
    const result = await curvesCommand({ ...networks, runs: [run], n: 4, steps: 2, batch: 4, out, clip: 'none' });
    const series = result.runs[0];
    // Snapshots at steps 2 (4 px phase: no 8 px level), 4 (8 px); the final checkpoint is step 6.
    expect(series.points.map((p) => p.step)).toEqual([4, 6]);
    expect(series.skipped).toEqual(['step 2: levels 4 px, no 8 px']);
    expect(series.points.every((p) => p.resolution === 8 && p.fid > 0)).toBe(true);
    expect(existsSync(join(out, 'curves-fid.svg'))).toBe(true);
    expect(readFileSync(join(out, 'curves.md'), 'utf8')).toMatch(/\| run \| 4 \| 8 \| \d+\.\d{3} \| – \|/);
    // At 4 px, every checkpoint qualifies.
    const low = await curvesCommand({
      ...networks,
      runs: [run],
      n: 4,
      steps: 2,
      batch: 4,
      out: join(dir, 'curves4'),
      clip: 'none',
      resolution: 4,
    });
    expect(low.runs[0].points.map((p) => p.step)).toEqual([2, 4, 6]);
  }, 300_000);
});
