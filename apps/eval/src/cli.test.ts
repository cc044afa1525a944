import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { frechetDistance, readFidStats, writeFidStats, writeNpz } from '@matryoshka-ts/metrics';
import { ONNX_FLOAT, onnxModel, seeded } from '@matryoshka-ts/test-utils';
import { afterAll, expect, it } from 'vitest';
import { frechetCommand } from './frechet-command.js';
import { writePng } from './images.js';

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
    // A user error is one line; a stack trace is printed only for bugs.
    expect(run.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
  }
}, 120_000);

it('frechetCommand (the same code, in process)', () => {
  expect(frechetCommand(a, b, { method: 'eigh' }).fid).toBeCloseTo(want, 12);
  expect(() => frechetCommand(a, dir)).toThrow(/not a file/);
});

it('the built-in help names every command', () => {
  const help = execFileSync(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', join(root, 'apps/eval/src/cli.ts'), '--help'],
    { cwd: root, encoding: 'utf8' },
  );
  for (const command of ['frechet', 'stats', 'fid', 'clip', 'generate', 'sweep', 'curves', 'compare'])
    expect(help).toMatch(new RegExp(`\\n  ${command} `));
});

it('mdm-eval stats with an ONNX feature network prints N, network id and resize, and writes .npz + sidecar', () => {
  const images = join(dir, 'images');
  mkdirSync(images);
  const r = seeded(1);
  for (let i = 0; i < 3; i++)
    writePng(join(images, `${i}.png`), {
      data: Uint8Array.from({ length: 10 * 10 * 3 }, () => Math.floor(r() * 256)),
      width: 10,
      height: 10,
      channels: 3,
    });
  writeFileSync(join(images, 'broken.png'), 'not a png');
  const model = join(dir, 'mean.onnx');
  // Features = per-channel means of the input: GlobalAveragePool + Flatten.
  writeFileSync(
    model,
    onnxModel({
      inputs: [{ name: 'x', type: ONNX_FLOAT, shape: ['n', 3, 299, 299] }],
      outputs: [{ name: 'y', type: ONNX_FLOAT, shape: ['n', 3] }],
      nodes: [
        { op: 'GlobalAveragePool', inputs: ['x'], outputs: ['p'] },
        { op: 'Flatten', inputs: ['p'], outputs: ['y'], attributes: { axis: 1 } },
      ],
    }),
  );
  const out = join(dir, 'ref.npz');
  const run = mdmEval(['stats', '--images', images, '--features', model, '--out', out, '--backend', 'cpu']);
  expect(run.status, run.stderr).toBe(0);
  const report = JSON.parse(run.stdout.trim());
  expect(report).toMatchObject({ out, n: 3, source: images, dim: 3, proxy: false, skipped: { 'corrupt image': 1 } });
  expect(report.features).toMatch(/^onnx:mean\.onnx#[0-9a-f]{12}\|pytorch-fid@299\|0-1$/);
  expect(report.resize).toMatch(/pytorch-fid/);
  expect(readFidStats(out).dim).toBe(3);
  const missing = mdmEval(['fid', '--samples', images, '--reference', out, '--features', join(dir, 'nope.onnx')]);
  expect(missing.status).toBe(1);
  expect(missing.stderr).toMatch(/--features .*nope\.onnx: no such file or directory/);
}, 120_000);
