import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mdm-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `pnpm mdm-train …` from the repo root, as a user would. */
function mdmTrain(args: string[]): string {
  const execpath = process.env.npm_execpath;
  const [cmd, pre] = execpath && /pnpm/.test(execpath) ? [process.execPath, [execpath]] : ['pnpm', []];
  return execFileSync(cmd, [...pre, '--silent', 'mdm-train', ...args], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

it('the stable command line trains the tiny preset, resumes it, and appends one JSON object per step', () => {
  const out = join(dir, 'run');
  const first = mdmTrain(['train', '--preset', 'tiny', '--steps', '3', '--out', out, '--seed', '7']);
  expect(first).toMatch(/samples: .*samples\.png/);
  // A script may repeat its flags when resuming; they must match the run's config.
  mdmTrain(['train', '--preset', 'tiny', '--steps', '4', '--out', out, '--seed', '7', '--resume', out]);
  expect(() => mdmTrain(['train', '--preset', 'tiny', '--seed', '8', '--resume', out])).toThrow(
    /trained with another config/,
  );
  mdmTrain(['train', '--resume', out, '--steps', '5']);
  // A fresh run into the trained run's folder is refused: its history stays.
  expect(mdmTrainFails(['train', '--preset', 'tiny', '--steps', '1', '--out', out])).toMatch(
    /^mdm-train: .* already holds a run \(checkpoint\.safetensors, metrics\.jsonl\): continue it with --resume/,
  );
  const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(rows.map((r) => r.step)).toEqual([1, 2, 3, 4, 5]);
  for (const r of rows) expect(Number.isFinite(r.loss)).toBe(true);
  expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).seed).toBe(7);
  const sample = mdmTrain([
    'sample',
    '--run',
    out,
    '--n',
    '2',
    '--steps',
    '2',
    '--prompt',
    'grinning face',
    '--out',
    join(dir, 'grid.png'),
  ]);
  expect(sample).toContain(join(dir, 'grid.png'));
  expect(readFileSync(join(dir, 'grid.png')).subarray(1, 4).toString()).toBe('PNG');
}, 240_000);

it.each([
  ['simple-tiny', []],
  ['cascaded-tiny', []],
  // The autoencoder stage trains 3 steps here instead of the preset's 100.
  ['latent-tiny', ['--set', 'model.autoencoder.train.steps=3']],
])(
  'the %s baseline trains, resumes into its stages and samples through the command line',
  (preset, extra) => {
    const out = join(dir, preset);
    const first = mdmTrain(['train', '--preset', preset, '--steps', '2', '--out', out, ...extra]);
    expect(first).toMatch(/samples: .*samples\.png/);
    mdmTrain(['train', '--resume', out, '--steps', '3']);
    const stageDirs = preset === 'simple-tiny' ? [out] : stageRuns(out);
    expect(stageDirs.length).toBeGreaterThan(0);
    for (const d of stageDirs) {
      const steps = readFileSync(join(d, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).step);
      expect(steps).toEqual([1, 2, 3]);
    }
    const grid = join(dir, `${preset}.png`);
    mdmTrain(['sample', '--run', out, '--n', '2', '--steps', '2', '--prompt', 'grinning face', '--out', grid]);
    expect(readFileSync(grid).subarray(1, 4).toString()).toBe('PNG');
  },
  240_000,
);

/** The diffusion stages of a multi-stage run (from its run.json). */
function stageRuns(out: string): string[] {
  const manifest = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')) as {
    stages: Array<{ kind: string; dir: string }>;
  };
  return manifest.stages.filter((s) => s.kind === 'diffusion').map((s) => join(out, s.dir));
}

/** Runs `pnpm mdm-train …` expecting it to fail; returns what it printed on stderr. */
function mdmTrainFails(args: string[]): string {
  try {
    mdmTrain(args);
  } catch (error) {
    return String((error as { stderr?: string }).stderr);
  }
  throw new Error(`mdm-train ${args.join(' ')} succeeded`);
}

it('--force starts over in a used folder, moving the old run aside', () => {
  const out = join(dir, 'forced');
  mdmTrain(['train', '--preset', 'tiny', '--steps', '2', '--out', out]);
  const old = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
  mdmTrain(['train', '--preset', 'tiny', '--steps', '1', '--out', out, '--force']);
  const aside = readdirSync(dir).filter((d) => d.startsWith('forced.replaced-'));
  expect(aside).toHaveLength(1);
  expect(readFileSync(join(dir, aside[0], 'metrics.jsonl'), 'utf8')).toBe(old);
  expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1);
}, 120_000);

it('refuses a bad command with one clear line, no stack trace', () => {
  const errors = [
    mdmTrainFails(['train', '--preset', 'nope', '--out', join(dir, 'x')]),
    mdmTrainFails(['train', '--preset', 'tiny', '--set', 'optimizer.lr=-1', '--out', join(dir, 'y')]),
    mdmTrainFails(['train', '--config', join(dir, 'missing.yaml'), '--out', join(dir, 'z')]),
    mdmTrainFails(['sample', '--run', join(dir, 'no-such-run')]),
    mdmTrainFails(['data-check', '--source', 'cc12m', '--path', join(dir, 'no-shards')]),
  ];
  // Usage errors (an option's value) name the option; commander shows the usage after them.
  const usage = [
    mdmTrainFails(['sample', '--run', join(dir, 'run'), '--n', '0']),
    mdmTrainFails(['train', '--preset', 'tiny', '--steps', '-3', '--out', join(dir, 'w')]),
    mdmTrainFails(['sample', '--run', join(dir, 'run'), '--guidance', '-5']),
  ];
  expect(errors[0]).toMatch(/^mdm-train: unknown preset 'nope'/);
  expect(errors[1]).toMatch(/^mdm-train: config: optimizer\.lr:/);
  expect(errors[2]).toMatch(/^mdm-train: .*missing\.yaml: cannot read the config file/);
  expect(errors[3]).toMatch(/^mdm-train: no run or checkpoint at .*no-such-run/);
  expect(errors[4]).toMatch(/^mdm-train: .*no-shards/);
  expect(usage[0]).toMatch(/^error: option '--n <n>' argument '0' is invalid\. --n must be at least 1, got 0/);
  expect(usage[1]).toMatch(/--steps must be at least 1, got -3/);
  expect(usage[2]).toMatch(/--guidance must be a number ≥ 0, got -5/);
  for (const text of usage) expect(text).not.toMatch(/\n\s+at /);
  // A user error is one line: the stack is for bugs.
  for (const text of errors) {
    expect(text.trim().split('\n')).toHaveLength(1);
    expect(text).not.toMatch(/\n\s+at /);
  }
}, 120_000);

it('data-check prints one JSON line for the bundled data', () => {
  const stdout = mdmTrain(['data-check', '--source', 'bundled', '--size', '16', '--limit', '6', '--workers', '1']);
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const result = JSON.parse(lines[0]);
  expect(result.read).toBe(6);
  expect(result.skipped).toEqual({});
  expect(result.images_per_s).toBeGreaterThan(0);
}, 60_000);
