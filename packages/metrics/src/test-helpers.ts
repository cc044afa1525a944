/**
 * Test-only helpers (imported by the *.test.ts files; not exported from the package): a seeded
 * generator, Gaussian samples, and a way to run python3 with numpy/scipy as the reference.
 */
import { pythonCandidates, seeded } from '@matryoshka-ts/test-utils';
import { spawnSync } from 'node:child_process';

export { seeded };

/** A standard normal sampler (Box–Muller) over a seeded uniform generator. */
export function gaussian(seed: number): () => number {
  const u = seeded(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const t = 2 * Math.PI * u();
    spare = r * Math.sin(t);
    return r * Math.cos(t);
  };
}

/**
 * n samples (rows × d, flat) of a correlated Gaussian: z·A + shift with z standard normal and A a
 * fixed random d×d mixing matrix (scaled by `scale`), so the covariance is AᵀA·scale², full rank
 * when n > d and of rank n − 1 (after centring) when n ≤ d.
 */
export function correlatedSamples(
  seed: number,
  n: number,
  d: number,
  options: { scale?: number; shift?: number } = {},
): Float64Array {
  const g = gaussian(seed);
  const scale = options.scale ?? 1;
  const shift = options.shift ?? 0;
  const a = Float64Array.from({ length: d * d }, () => (g() * scale) / Math.sqrt(d));
  const out = new Float64Array(n * d);
  const z = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) z[i] = g();
    for (let i = 0; i < d; i++) {
      const zi = z[i];
      const row = i * d;
      for (let j = 0; j < d; j++) out[r * d + j] += zi * a[row + j];
    }
    for (let j = 0; j < d; j++) out[r * d + j] += shift + (0.1 * j) / d;
  }
  return out;
}

let chosen = 'python3';

/**
 * Whether a python3 on PATH can import these modules (it is then used by `runPython`); `why` says what is missing
 * when not.
 */
export function pythonWith(modules: string[]): { ok: boolean; why: string } {
  let reason = '';
  for (const python of pythonCandidates()) {
    const probe = spawnSync(python, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8', timeout: 60_000 });
    if (probe.status === 0) {
      chosen = python;
      return { ok: true, why: '' };
    }
    reason ||= probe.error ? probe.error.message : ((probe.stderr || '').trim().split('\n').pop() ?? '');
  }
  return {
    ok: false,
    why:
      `python3 with ${modules.join(' and ')} is not available (${reason}); ` +
      `the reference checks against it are skipped`,
  };
}

/**
 * Runs a python3 script (with the interpreter `pythonWith` found) and arguments; returns its stdout, throwing with its
 * stderr on failure.
 */
export function runPython(script: string, args: string[] = []): string {
  const run = spawnSync(chosen, ['-c', script, ...args], { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`python3 failed (${run.status ?? run.error?.message}):\n${run.stderr}`);
  return run.stdout;
}

/** max |a − b| / max |b|. */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}
