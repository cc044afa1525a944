import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { frechetDistance, writeFidStats, writeNpz } from '@matryoshka-ts/metrics';
import { afterAll, expect, it } from 'vitest';
import { frechetCommand } from './frechet-command.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mdm-eval-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * `mdm-eval …` from the repo root, run the way `pnpm mdm-eval` runs it (the TypeScript sources
 * through tsx), without needing a global pnpm; status, stdout and stderr.
 */
function mdmEval(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', 'apps/eval/src/cli.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

// Two small statistics files: diagonal covariances, so the distance has a closed form.
const d = 4;
const a = join(dir, 'a.npz');
const b = join(dir, 'b.npz');
const statsA = { mu: [0, 1, 2, 3], sigma: [1, 0, 0, 0, 0, 4, 0, 0, 0, 0, 9, 0, 0, 0, 0, 16] };
const statsB = { mu: [1, 1, 2, 3], sigma: [4, 0, 0, 0, 0, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 16] };
writeFidStats(a, statsA);
writeFidStats(b, statsB);
// ‖Δμ‖² = 1, Σ(√a − √b)² = (1 − 2)² + 0 + (3 − 1)² + 0 = 5.
const want = 6;

it('mdm-eval frechet prints one JSON line with fid, both paths and the dimension', () => {
  const run = mdmEval(['frechet', a, b]);
  expect(run.status, run.stderr).toBe(0);
  const lines = run.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const out = JSON.parse(lines[0]);
  expect(Object.keys(out)).toEqual(['fid', 'a', 'b', 'dim']);
  expect(out.a).toBe(a);
  expect(out.b).toBe(b);
  expect(out.dim).toBe(d);
  expect(out.fid).toBeCloseTo(want, 12);
  expect(out.fid).toBe(frechetDistance(statsA.mu, statsA.sigma, statsB.mu, statsB.sigma));
}, 60_000);

it('fails with exit code 1 and a message on stderr for missing files, wrong keys and mismatched dimensions', () => {
  const wrongKeys = join(dir, 'keys.npz');
  writeNpz(wrongKeys, { mean: { data: [0, 0, 0, 0] }, cov: { shape: [4, 4], data: new Float64Array(16) } });
  const small = join(dir, 'small.npz');
  writeFidStats(small, { mu: [0, 0], sigma: [1, 0, 0, 1] });
  const notZip = join(dir, 'text.npz');
  writeFileSync(notZip, 'not a zip');
  const cases: [string[], RegExp][] = [
    [['frechet', join(dir, 'missing.npz'), b], /mdm-eval: no such file: .*missing\.npz/],
    [['frechet', a, wrongKeys], /keys\.npz lack 'mu' and 'sigma' \(keys found: 'mean', 'cov'\)/],
    [['frechet', a, small], /differ in dimension: .*a\.npz has d = 4, .*small\.npz has d = 2/],
    [['frechet', notZip, a], /text\.npz: not a zip/],
    [['frechet', a], /missing required argument 'b'/],
  ];
  for (const [args, message] of cases) {
    const run = mdmEval(args);
    expect(run.status, args.join(' ')).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
  }
}, 120_000);

it('frechetCommand (the same code, in process)', () => {
  expect(frechetCommand(a, b, { method: 'eigh' }).fid).toBeCloseTo(want, 12);
  expect(() => frechetCommand(a, dir)).toThrow(/not a file/);
});

it('the built-in help names the command', () => {
  expect(execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(root, 'apps/eval/src/cli.ts'), '--help'], { cwd: root, encoding: 'utf8' })).toMatch(/frechet/);
});
