import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@matryoshka-ts/backends';
import { frechetDistance } from '@matryoshka-ts/metrics';
import { TRAIN_PRESETS, parseTrainConfig, train } from '@matryoshka-ts/pipelines';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCommand } from './generate-command.js';
import { mergeCommand, statsCommand } from './metric-commands.js';
import { readLabelledStats } from './statistics.js';
import { SMALL_PROXY } from './test-helpers.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mdm-eval-shard-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const networks = { cacheDir: join(dir, 'cache'), proxy: SMALL_PROXY };
const run = join(dir, 'run');

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
  const micro = { ...TRAIN_PRESETS.micro, phases: [{ resolution: 8, batchSize: 2, steps: 2 }], backend: 'cpu' };
  await train(parseTrainConfig(micro), { out: run });
}, 300_000);

describe('sharded generation and statistics equal one process', () => {
  const whole = join(dir, 'whole');
  const sharded = join(dir, 'sharded');
  const options = { run, n: 7, batch: 2, steps: 2 };

  it('generate --shard i/3 into one directory writes the same files as one generate', async () => {
    await generateCommand({ ...options, out: whole });
    const made = [0, 1, 2].map(async (index) =>
      generateCommand({ ...options, out: sharded, shard: { index, count: 3 } }),
    );
    // Shard 0 of 4 batches takes batch 0; shard 1 batch 1; shard 2 batches 2 and 3 (7 images).
    expect((await Promise.all(made)).map((r) => r.generated)).toEqual([2, 2, 3]);
    const files = readdirSync(join(whole, 'images')).sort();
    expect(files).toHaveLength(7);
    expect(readdirSync(join(sharded, 'images')).sort()).toEqual(files);
    for (const f of files)
      expect(readFileSync(join(sharded, 'images', f)).equals(readFileSync(join(whole, 'images', f)))).toBe(true);
    for (const f of ['captions.txt', 'manifest.json'])
      expect(readFileSync(join(sharded, f), 'utf8')).toBe(readFileSync(join(whole, f), 'utf8'));
    expect(readdirSync(sharded).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }, 120_000);

  it('the Slurm template, run as a three-task array would run it, writes the same files', () => {
    const viaSlurm = join(dir, 'via-slurm');
    const script = join(root, 'tooling', 'launch', 'slurm', 'generate.sbatch');
    const cli = join(root, 'apps', 'eval', 'src', 'cli.ts');
    for (let task = 0; task < 3; task++) {
      execFileSync('bash', [script], {
        env: {
          ...process.env,
          SLURM_ARRAY_TASK_ID: String(task),
          SLURM_ARRAY_TASK_COUNT: '3',
          RUN: run,
          N: String(options.n),
          OUT: viaSlurm,
          GENERATE_ARGS: `--batch ${options.batch} --steps ${options.steps} --backend cpu`,
          MDM_EVAL: `${process.execPath} --conditions=source --import tsx ${cli}`,
        },
        stdio: 'pipe',
      });
    }
    const files = readdirSync(join(whole, 'images')).sort();
    expect(readdirSync(join(viaSlurm, 'images')).sort()).toEqual(files);
    for (const f of files)
      expect(readFileSync(join(viaSlurm, 'images', f)).equals(readFileSync(join(whole, 'images', f)))).toBe(true);
    // Without the array's variables it stops at once and says why.
    expect(() => execFileSync('bash', [script], { env: { ...process.env, RUN: run }, stdio: 'pipe' })).toThrow(
      /run as a job array/,
    );
  }, 120_000);

  it('each Kubernetes Indexed Job has as many completions as its --shard n', () => {
    for (const file of ['generate-job.yaml', 'stats-job.yaml']) {
      const text = readFileSync(join(root, 'tooling', 'launch', 'k8s', file), 'utf8');
      expect(text).toMatch(/completionMode: Indexed/);
      const completions = Number(/completions: (\d+)/.exec(text)?.[1]);
      const n = Number(/--shard "\$JOB_COMPLETION_INDEX\/(\d+)"/.exec(text)?.[1]);
      expect(completions).toBeGreaterThan(1);
      expect(n, file).toBe(completions);
    }
  });

  it('stats --shard i/3 then merge give the unsharded statistics, and the same FID', async () => {
    const one = join(dir, 'bundled.npz');
    await statsCommand({ ...networks, images: 'bundled', out: one });
    const parts = [2, 0, 1].map((i) => join(dir, `part-${i}.npz`));
    for (const [k, index] of [2, 0, 1].entries()) {
      const part = await statsCommand({ ...networks, images: 'bundled', out: parts[k], shard: { index, count: 3 } });
      expect(part).toMatchObject({ shard: `${index}/3` });
    }
    const merged = join(dir, 'merged.npz');
    const report = mergeCommand(parts, merged);
    const a = readLabelledStats(one);
    const b = readLabelledStats(merged);
    expect(report).toMatchObject({ parts: 3, n: 169, source: a.source, features: a.features });
    expect(b.n).toBe(a.n);
    // The same sums in another order (Chan's update over three parts vs 256-row chunks): float64 rounding.
    expect(frechetDistance(a.mu, a.sigma, b.mu, b.sigma)).toBeLessThan(1e-6);
    const samples = join(dir, 'samples.npz');
    await statsCommand({ ...networks, images: join(whole, 'images'), out: samples });
    const s = readLabelledStats(samples);
    const fidOne = frechetDistance(s.mu, s.sigma, a.mu, a.sigma);
    const fidMerged = frechetDistance(s.mu, s.sigma, b.mu, b.sigma);
    expect(Math.abs(fidMerged - fidOne)).toBeLessThan(1e-9);
    expect(fidOne).toBeGreaterThan(0);
  }, 300_000);

  it('merge refuses a missing or repeated shard, whole statistics, and parts of another job', () => {
    const parts = [0, 1, 2].map((i) => join(dir, `part-${i}.npz`));
    const out = join(dir, 'bad.npz');
    expect(() => mergeCommand(parts.slice(0, 2), out)).toThrow(/shards 2\/3 are missing/);
    expect(() => mergeCommand([...parts, parts[1]], out)).toThrow(/shard 1\/3 is given twice/);
    expect(() => mergeCommand([parts[0], join(dir, 'bundled.npz')], out)).toThrow(/holds whole statistics/);
    const other = join(dir, 'other-part-0.npz');
    writeFileSync(other, readFileSync(parts[0]));
    const label = JSON.parse(readFileSync(`${parts[0]}.json`, 'utf8'));
    writeFileSync(`${other}.json`, JSON.stringify({ ...label, features: 'another-network' }));
    expect(() => mergeCommand([other, parts[1], parts[2]], out)).toThrow(/features another-network/);
    expect(existsSync(out)).toBe(false);
  });
});
