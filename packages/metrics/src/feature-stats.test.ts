import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FeatureStats } from './feature-stats.js';
import { correlatedSamples, maxRelativeError, pythonWith, runPython } from './test-helpers.js';

/** Two-pass mean and (n − 1)-normalised covariance, written independently of FeatureStats. */
function twoPass(x: ArrayLike<number>, n: number, d: number): { mean: Float64Array; cov: Float64Array } {
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) mean[i] += x[r * d + i];
  for (let i = 0; i < d; i++) mean[i] /= n;
  const cov = new Float64Array(d * d);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) {
      const xi = x[r * d + i] - mean[i];
      for (let j = 0; j < d; j++) cov[i * d + j] += xi * (x[r * d + j] - mean[j]);
    }
  }
  for (let k = 0; k < d * d; k++) cov[k] /= n - 1;
  return { mean, cov };
}

/**
 * max |Δcov_ij| / √(cov_ii·cov_jj): the error of each entry on the scale of its variables. (An
 * entry that is near 0 by cancellation cannot have a small error relative to itself.)
 */
function covarianceError(got: Float64Array, want: Float64Array, d: number): number {
  let worst = 0;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      const scale = Math.sqrt(want[i * d + i] * want[j * d + j]);
      worst = Math.max(worst, Math.abs(got[i * d + j] - want[i * d + j]) / scale);
    }
  }
  return worst;
}

describe('FeatureStats', () => {
  it('matches a two-pass computation, across chunk boundaries, from flat or per-row batches', () => {
    const d = 13;
    const n = 700; // > 2 chunks of 256
    const x = correlatedSamples(1, n, d, { shift: 3 });
    const want = twoPass(x, n, d);
    const flat = new FeatureStats(d).add(x);
    const rows = new FeatureStats(d).add(Array.from({ length: n }, (_, r) => Array.from(x.subarray(r * d, r * d + d))));
    for (const s of [flat, rows]) {
      expect(s.count).toBe(n);
      // Both are float64 sums of the same centred products in different orders: ~n·ε apart.
      expect(maxRelativeError(s.mean(), want.mean)).toBeLessThan(1e-13);
      expect(covarianceError(s.covariance(), want.cov, d)).toBeLessThan(1e-13);
    }
    // The covariance is exactly symmetric.
    const c = flat.covariance();
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) expect(c[i * d + j]).toBe(c[j * d + i]);
  });

  it('merge (Chan’s parallel update) equals one pass over all rows, whatever the split', () => {
    const d = 9;
    const n = 600;
    const x = correlatedSamples(2, n, d, { shift: -2 });
    const one = new FeatureStats(d).add(x);
    for (const splits of [[1], [300], [17, 256, 599], [5, 6, 7, 300]]) {
      const parts: FeatureStats[] = [];
      let from = 0;
      for (const to of [...splits, n]) {
        parts.push(new FeatureStats(d).add(x.subarray(from * d, to * d)));
        from = to;
      }
      const merged = parts.reduce((acc, p) => acc.merge(p), new FeatureStats(d));
      expect(merged.count).toBe(n);
      // Chunks are combined by the same update either way; only the rounding order differs.
      expect(maxRelativeError(merged.mean(), one.mean())).toBeLessThan(1e-13);
      expect(covarianceError(merged.covariance(), one.covariance(), d)).toBeLessThan(1e-13);
    }
    // Merging an empty accumulator changes nothing; merge leaves its argument unchanged.
    const before = one.covariance();
    const other = new FeatureStats(d).add(x.subarray(0, 10 * d));
    const otherCov = other.covariance();
    one.clone().merge(other);
    expect(other.covariance()).toEqual(otherCov);
    expect(one.merge(new FeatureStats(d)).covariance()).toEqual(before);
  });

  it('parts() → fromParts() round-trips the state exactly, and parts merge as the accumulators do', () => {
    const d = 5;
    const x = correlatedSamples(4, 90, d, { shift: 3 });
    const a = new FeatureStats(d).add(x.subarray(0, 40 * d));
    const b = new FeatureStats(d).add(x.subarray(40 * d));
    const copy = FeatureStats.fromParts(a.parts());
    expect(copy.count).toBe(40);
    expect(copy.mean()).toEqual(a.mean());
    expect(copy.covariance()).toEqual(a.covariance());
    // Bit-equal: the parts hold the whole state, so merging copies is merging the originals.
    const viaParts = FeatureStats.fromParts(a.parts()).merge(FeatureStats.fromParts(b.parts()));
    const direct = a.clone().merge(b);
    expect(viaParts.covariance()).toEqual(direct.covariance());
    expect(viaParts.mean()).toEqual(direct.mean());
    // The scatter is the full symmetric matrix Σ(x − x̄)(x − x̄)ᵀ = (n − 1)·covariance.
    const { scatter } = a.parts();
    const cov = a.covariance();
    for (let i = 0; i < d * d; i++) expect(scatter[i]).toBeCloseTo(39 * cov[i], 10);
    expect(() => FeatureStats.fromParts({ count: 2, mean: [0, 0], scatter: [1, 0, 0] })).toThrow(/expected 2×2/);
    expect(() => FeatureStats.fromParts({ count: -1, mean: [0], scatter: [0] })).toThrow(/non-negative integer/);
  });

  it('stays accurate when the features have a large mean (centred chunks, not raw moments)', () => {
    const d = 4;
    const n = 1000;
    const x = correlatedSamples(3, n, d, { shift: 1e6 });
    const want = twoPass(x, n, d);
    expect(covarianceError(new FeatureStats(d).add(x).covariance(), want.cov, d)).toBeLessThan(1e-9);
  });

  it('accepts Float32Array rows (converted exactly)', () => {
    const d = 6;
    const x32 = Float32Array.from(correlatedSamples(4, 50, d));
    const want = twoPass(Float64Array.from(x32), 50, d);
    expect(covarianceError(new FeatureStats(d).add(x32).covariance(), want.cov, d)).toBeLessThan(1e-13);
  });

  it('refuses bad input with a clear message', () => {
    expect(() => new FeatureStats(0)).toThrow(/dim must be a positive integer/);
    expect(() => new FeatureStats(3).add(new Float64Array(7))).toThrow(/whole rows of 3 values, got 7/);
    expect(() =>
      new FeatureStats(3).add([
        [1, 2, 3],
        [1, 2],
      ]),
    ).toThrow(/row 1 has 2 values, expected 3/);
    expect(() => new FeatureStats(2).add([[1, Number.NaN]])).toThrow(/non-finite/);
    expect(() => new FeatureStats(2).add([[1, 2]]).covariance()).toThrow(/at least 2 samples, got 1/);
    expect(() => new FeatureStats(2).mean()).toThrow(/no samples/);
    expect(() => new FeatureStats(2).merge(new FeatureStats(3))).toThrow(/dimension 3 into 2/);
  });
});

const py = pythonWith(['numpy']);
if (!py.ok) console.warn(py.why);

describe.skipIf(!py.ok)('FeatureStats against numpy.mean / numpy.cov (needs python3 + numpy)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mdm-metrics-stats-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('float64 and float32 features, d = 64, n = 1000, merged from uneven batches', () => {
    const d = 64;
    const n = 1000;
    const x = correlatedSamples(7, n, d, { shift: 5 });
    const x32 = Float32Array.from(x);
    writeFileSync(join(dir, 'x64.bin'), new Uint8Array(x.buffer));
    writeFileSync(join(dir, 'x32.bin'), new Uint8Array(x32.buffer));
    runPython(
      [
        'import numpy as np, sys',
        'd = sys.argv[1]; n, dim = int(sys.argv[2]), int(sys.argv[3])',
        "for name, dt in [('x64', '<f8'), ('x32', '<f4')]:",
        "    x = np.fromfile(f'{d}/{name}.bin', dtype=dt).reshape(n, dim).astype(np.float64)",
        "    np.mean(x, axis=0).tofile(f'{d}/{name}_mean.bin')",
        "    np.cov(x, rowvar=False).tofile(f'{d}/{name}_cov.bin')",
      ].join('\n'),
      [dir, String(n), String(d)],
    );
    const read = (name: string) => {
      const b = readFileSync(join(dir, name));
      return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    };
    for (const [name, data] of [
      ['x64', x],
      ['x32', x32],
    ] as const) {
      const stats = new FeatureStats(d);
      let from = 0;
      for (const size of [1, 99, 300, 600]) {
        stats.add(data.subarray(from * d, (from + size) * d));
        from += size;
      }
      // numpy sums pairwise, we by chunks and Chan's update: both float64, ~1e-15 apart; the
      // brief's 1e-12 relative (on the scale of each entry's variables) holds with margin.
      expect(maxRelativeError(stats.mean(), read(`${name}_mean.bin`))).toBeLessThan(1e-12);
      expect(covarianceError(stats.covariance(), read(`${name}_cov.bin`), d)).toBeLessThan(1e-12);
      expect(maxRelativeError(stats.covariance(), read(`${name}_cov.bin`))).toBeLessThan(1e-12);
    }
  });
});
