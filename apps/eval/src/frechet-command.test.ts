import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataError } from '@matryoshka-ts/core';
import { writeFidStats, writeNpz } from '@matryoshka-ts/metrics';
import { afterAll, expect, it } from 'vitest';
import { frechetCommand } from './frechet-command.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mdm-eval-frechet-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sigma = [1, 0, 0, 0, 0, 4, 0, 0, 0, 0, 9, 0, 0, 0, 0, 16];
const a = join(dir, 'a.npz');
writeFidStats(a, { mu: [0, 1, 2, 3], sigma });
const negated = join(dir, 'negated.npz');
writeFidStats(negated, { mu: [0, 1, 2, 3], sigma: sigma.map((v) => -v) });

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(DataError);
    return (error as Error).message;
  }
  throw new Error('expected a throw');
}

it('refuses a sigma that is not a covariance (a negated one gave fid 0), naming the file and the array', () => {
  expect(refusal(() => frechetCommand(a, negated))).toBe(
    `${negated}: 'sigma' is not positive semi-definite: its smallest eigenvalue is -16, below -0.00003 (-1e-6·Σᵢ|Σᵢᵢ|)`,
  );
  const skew = join(dir, 'skew.npz');
  writeFidStats(skew, { mu: [0, 1, 2, 3], sigma: sigma.map((v, k) => (k === 1 ? 0.5 : v)) });
  expect(refusal(() => frechetCommand(skew, a))).toMatch(
    /skew\.npz: 'sigma' is not symmetric: \|Σ − Σᵀ\| reaches 0\.5 at \[0, 1\]/,
  );
  const nan = join(dir, 'nan.npz');
  writeNpz(nan, { mu: { data: [0, 1, Number.NaN, 3] }, sigma: { shape: [4, 4], data: sigma } });
  expect(refusal(() => frechetCommand(a, nan))).toBe(`${nan}: 'mu' has a non-finite value (NaN) at [2]`);
  expect(frechetCommand(a, a).fid).toBe(0);
});

it('mdm-eval frechet exits 1 with one line on stderr for such a file', () => {
  const run = spawnSync(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', 'apps/eval/src/cli.ts', 'frechet', a, negated],
    { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  expect(run.status, run.stderr).toBe(1);
  expect(run.stdout).toBe('');
  expect(run.stderr.trim().split('\n')).toEqual([
    expect.stringMatching(/^mdm-eval: .*negated\.npz: 'sigma' is not positive semi-definite/),
  ]);
}, 60_000);
