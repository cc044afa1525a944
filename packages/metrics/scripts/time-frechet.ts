/**
 * Times the Fréchet distance at a given dimension (default 2048, Inception's pool features) on
 * covariances accumulated by FeatureStats from random features, and optionally checks the value
 * against pytorch-fid's scipy formula.
 *
 *   node --conditions=source --import tsx packages/metrics/scripts/time-frechet.ts [d] [--method eigh] [--check]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FeatureStats, frechetDistanceParts, writeFidStats } from '../src/index.js';

const args = process.argv.slice(2);
const d = Number(args.find((a) => /^\d+$/.test(a)) ?? 2048);
const method = args.includes('--method') ? (args[args.indexOf('--method') + 1] as 'cholesky' | 'eigh') : 'cholesky';
const n = d + 512;

function stats(seed: number, scale: number): { mu: Float64Array; sigma: Float64Array; seconds: number } {
  let s = seed >>> 0;
  const uniform = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  const rows = new Float32Array(256 * d);
  const acc = new FeatureStats(d);
  const t = performance.now();
  for (let done = 0; done < n; done += 256) {
    const m = Math.min(256, n - done);
    // Features with a little correlation: uniform noise plus a shared component per row.
    for (let r = 0; r < m; r++) {
      const shared = uniform() - 0.5;
      for (let i = 0; i < d; i++) rows[r * d + i] = scale * (uniform() - 0.5 + (i % 3 === 0 ? shared : 0));
    }
    acc.add(rows.subarray(0, m * d));
  }
  return { ...acc.fidStats(), seconds: (performance.now() - t) / 1000 };
}

const a = stats(1, 1);
const b = stats(2, 1.1);
console.log(`FeatureStats: ${n} rows of ${d} features in ${a.seconds.toFixed(1)} s`);
const t = performance.now();
const parts = frechetDistanceParts(a.mu, a.sigma, b.mu, b.sigma, { method });
const seconds = (performance.now() - t) / 1000;
console.log(
  JSON.stringify({ d, method, seconds: Number(seconds.toFixed(2)), fid: parts.distance, rank1: parts.rank1 }),
);

if (args.includes('--check')) {
  const dir = mkdtempSync(join(tmpdir(), 'mdm-time-frechet-'));
  try {
    writeFidStats(join(dir, 'a.npz'), a);
    writeFidStats(join(dir, 'b.npz'), b);
    const script = [
      'import sys, numpy as np, warnings',
      'from scipy import linalg',
      "warnings.simplefilter('ignore')",
      'fa, fb = np.load(sys.argv[1]), np.load(sys.argv[2])',
      "m1, s1, m2, s2 = fa['mu'], fa['sigma'], fb['mu'], fb['sigma']",
      'c = linalg.sqrtm(s1.dot(s2)); c = c.real if np.iscomplexobj(c) else c',
      'print(float((m1 - m2).dot(m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(c)))',
    ].join('\n');
    const run = spawnSync('python3', ['-c', script, join(dir, 'a.npz'), join(dir, 'b.npz')], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(run.stderr);
    const ref = Number(run.stdout);
    console.log(`scipy: ${ref}, relative error ${(Math.abs(parts.distance - ref) / Math.abs(ref)).toExponential(2)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
