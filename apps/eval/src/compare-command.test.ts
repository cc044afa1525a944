import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@matryoshka-ts/backends';
import { ConfigError } from '@matryoshka-ts/core';
import {
  TRAIN_PRESETS,
  type TrainConfigInput,
  openRun,
  parseRunConfig,
  parseTrainConfig,
  train,
  trainRun,
} from '@matryoshka-ts/pipelines';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CompareReport, compareCommand, runNames } from './compare-command.js';
import { PROXY_NOTE } from './networks.js';
import { panelGridSvg } from './plot.js';
import { SMALL_PROXY } from './test-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-eval-compare-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The trainer's micro preset (8 → 4 px) on the cpu backend, a few steps: two seeds to compare.
const micro = (seed: number): TrainConfigInput => ({
  ...TRAIN_PRESETS.micro,
  data: { skinTones: false, categories: ['Smileys & Emotion'] },
  phases: [
    { resolution: 4, batchSize: 2, steps: 1 },
    { resolution: 8, batchSize: 2, steps: 2 },
  ],
  sampling: { n: 2, steps: 2, sampler: 'ddim', guidance: 2, threshold: 'clip' },
  seed,
  backend: 'cpu',
});
// A two-stage cascade (4 px base, 8 px super-resolution), one step each, on a 50-step schedule.
const cascade: TrainConfigInput = {
  model: {
    kind: 'cascaded',
    stages: [
      {
        model: { resolution: 4, channels: [8], resBlocks: [1], midBlock: false, groups: 4, timeEmbedDim: 16 },
        phases: [{ resolution: 4, batchSize: 2, steps: 1 }],
      },
      {
        model: { resolution: 8, channels: [8], resBlocks: [1], midBlock: false, groups: 4, timeEmbedDim: 16 },
        phases: [{ resolution: 8, batchSize: 2, steps: 1 }],
      },
    ],
    augLevel: 10,
  },
  data: { skinTones: false, categories: ['Smileys & Emotion'] },
  conditioning: { kind: 'none' },
  // No warm-up: the one step moves the weights, so the low-resolution input (and its level) matters.
  optimizer: { lr: 1e-2, warmupSteps: 0 },
  schedule: { steps: 50 },
  sampling: { n: 2, steps: 2, sampler: 'ddim' },
  backend: 'cpu',
};
const runs = [join(dir, 'seed0'), join(dir, 'seed1')];
const cascaded = join(dir, 'cascade');
const networks = { cacheDir: join(dir, 'cache'), proxy: SMALL_PROXY };

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
  for (const [seed, out] of runs.entries()) await train(parseTrainConfig(micro(seed)), { out });
  await trainRun(parseRunConfig(cascade), { out: cascaded });
}, 120_000);

describe('mdm-eval compare', () => {
  it('compares two runs: JSON report, Markdown table and plots', async () => {
    const out = join(dir, 'compare');
    const result = await compareCommand({ ...networks, runs, n: 4, steps: 2, batch: 4, out });
    const report = JSON.parse(readFileSync(join(out, 'compare.json'), 'utf8')) as CompareReport;
    expect(report).toMatchObject({ n: 4, steps: 2, proxy: true, note: PROXY_NOTE, definition: 'torchmetrics' });
    expect(report.features).toBe(result.features);
    expect(report.features).toMatch(/^proxy-clip-emoji#/);
    expect(report.guidance).toBeUndefined();
    expect(report.augLevels).toBeUndefined();
    expect(report.runs.map((r) => r.name)).toEqual(['seed0', 'seed1']);
    for (const [i, entry] of report.runs.entries()) {
      const run = await openRun(runs[i]);
      const paramCount = run.paramCount;
      run.dispose();
      expect(entry).toMatchObject({
        run: runs[i],
        kind: 'mdm',
        trainingSteps: 3,
        params: paramCount,
        resolution: 8,
        samplingSteps: 2,
        guidance: 2,
        // Text-conditioned with guidance 2: a conditional and an unconditional pass per step.
        functionEvaluationsPerSample: 2 * 2,
      });
      expect(entry.trainSeconds).toBeGreaterThan(0);
      expect(entry.samplingSecondsPerImage).toBeGreaterThan(0);
      expect(Number.isFinite(entry.fid) && entry.fid > 0).toBe(true);
      expect(entry.clip).toBeGreaterThanOrEqual(0);
      expect(entry).not.toHaveProperty('autoencoderParams');
      expect(entry).not.toHaveProperty('augLevels');
      expect(entry.reference.source).toMatch(/^run-data:emoji-.*@8/);
      expect(existsSync(join(out, entry.name, 'samples', 'images', '000003.png'))).toBe(true);
    }
    const md = readFileSync(join(out, 'compare.md'), 'utf8');
    expect(md).toMatch(/\| run \| kind \| training steps \| train wall time \| params \|/);
    for (const entry of report.runs)
      expect(md).toContain(`| ${entry.name} | mdm | 3 | ${entry.trainSeconds!.toFixed(1)} s | `);
    expect(md).toContain(`${report.features} features`);
    expect(md).toMatch(/\*\*PROXY/);
    const svg = readFileSync(join(out, 'compare.svg'), 'utf8');
    expect(svg.startsWith('<svg ')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    // Four panels (FID and CLIP, against step and time), each a nested chart.
    expect(svg.match(/<svg /g)).toHaveLength(5);
    expect(svg.match(/<svg /g)?.length).toBe(svg.match(/<\/svg>/g)?.length);
    for (const title of ['FID vs training step', 'FID vs training wall time', 'CLIP score vs training wall time'])
      expect(svg).toContain(title);

    // A re-run samples nothing new, and keeps the timing measured the first time.
    const again = await compareCommand({ ...networks, runs, n: 4, steps: 2, batch: 4, out, clip: 'none' });
    expect(again.runs.map((r) => r.fid)).toEqual(report.runs.map((r) => r.fid));
    expect(again.runs.map((r) => r.samplingSecondsPerImage)).toEqual(report.runs.map((r) => r.samplingSecondsPerImage));
    expect(again.runs.every((r) => r.clip === null)).toBe(true);
    expect(readFileSync(join(out, 'compare.svg'), 'utf8').match(/<svg /g)).toHaveLength(3);
  }, 120_000);

  it('samples a cascade at each augmentation level and reports the best', async () => {
    const out = join(dir, 'compare-cascade');
    const result = await compareCommand({
      ...networks,
      runs: [cascaded, runs[0]],
      n: 4,
      steps: 2,
      batch: 4,
      out,
      augLevels: [1, 40],
      guidance: 1,
      clip: 'none',
    });
    expect(result.augLevels).toEqual([1, 40]);
    expect(result.guidance).toBe(1);
    const [c, m] = result.runs;
    // Training steps of a cascade: its two stages' (1 each).
    expect(c).toMatchObject({ kind: 'cascaded', resolution: 8, trainingSteps: 2, clip: null });
    // Two stages, 2 steps each, unconditional: 4 evaluations.
    expect(c.functionEvaluationsPerSample).toBe(4);
    expect(c.augLevels!.map((a) => a.level)).toEqual([1, 40]);
    const best = c.augLevels!.reduce((a, b) => (b.fid < a.fid ? b : a));
    expect(c.augLevel).toBe(best.level);
    expect(c.fid).toBe(best.fid);
    // The level reaches the sampler: other inputs, other samples.
    expect(c.augLevels![0].fid).not.toBe(c.augLevels![1].fid);
    for (const level of [1, 40]) {
      const manifest = JSON.parse(readFileSync(join(out, 'cascade', `samples-aug${level}`, 'manifest.json'), 'utf8'));
      expect(manifest.augLevel).toBe(level);
    }
    // guidance 1: one pass per step.
    expect(m.functionEvaluationsPerSample).toBe(2);
    expect(m).not.toHaveProperty('augLevel');
    const md = readFileSync(join(out, 'compare.md'), 'utf8');
    expect(md).toMatch(new RegExp(`\\| cascade \\| cascaded \\| 2 \\| .* \\| ${c.augLevel} \\(best\\) \\|`));
    expect(md).toMatch(/\| cascade \| 40( \(best\))? \| \d+\.\d{3} \| – \|/);
  }, 120_000);

  it('refuses augmentation levels outside 1…the schedule steps, before sampling anything', async () => {
    for (const augLevels of [[0], [1, 51], [2.5]]) {
      const out = join(dir, `refused-${augLevels.join('-')}`);
      const attempt = compareCommand({ ...networks, runs: [cascaded], n: 4, steps: 2, out, augLevels, clip: 'none' });
      await expect(attempt).rejects.toThrow(ConfigError);
      await expect(attempt).rejects.toThrow(/--aug-levels/);
      expect(existsSync(out)).toBe(false);
    }
    await expect(
      compareCommand({ ...networks, runs: [cascaded], n: 4, out: join(dir, 'x'), augLevels: [51] }),
    ).rejects.toThrow(/--aug-levels 51: the cascaded run .* takes levels in 1…50/);
    await expect(compareCommand({ ...networks, runs: [join(dir, 'nope')], n: 4, out: join(dir, 'y') })).rejects.toThrow(
      /--runs .*nope: no such run directory/,
    );
  });
});

describe('compare helpers', () => {
  it('runNames keeps base names unique', () => {
    expect(runNames(['a/run', 'b/run', 'c/other', 'd/run/', 'e/run-2'])).toEqual([
      'run',
      'run-2',
      'other',
      'run-3',
      'run-2-2',
    ]);
  });

  it('panelGridSvg places charts row by row', () => {
    const chart = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="5"><g/></svg>\n';
    const svg = panelGridSvg([chart, chart, chart], { width: 10, height: 5, columns: 2 });
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="20" height="10"/);
    expect(svg).toContain('<svg x="0" y="0" xmlns');
    expect(svg).toContain('<svg x="10" y="0" xmlns');
    expect(svg).toContain('<svg x="0" y="5" xmlns');
  });
});
