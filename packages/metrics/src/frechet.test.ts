import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FeatureStats } from './feature-stats.js';
import { covarianceDefect, frechetDistance, frechetDistanceParts } from './frechet.js';
import { gemmNT, symmetricEigen } from './linalg.js';
import { writeFidStats } from './npz.js';
import { correlatedSamples, gaussian, pythonWith, runPython } from './test-helpers.js';

const METHODS = ['cholesky', 'eigh'] as const;

function diagonal(values: number[]): Float64Array {
  const n = values.length;
  const out = new Float64Array(n * n);
  values.forEach((v, i) => (out[i * n + i] = v));
  return out;
}

/** Q·diag(values)·Qᵀ (row-major): (Q·diag)·Qᵀ as one product. */
function rotated(values: number[], q: Float64Array): Float64Array {
  const n = values.length;
  const qd = Float64Array.from(q, (x, k) => x * values[k % n]);
  return gemmNT(qd, q, n, n, n);
}

/** A random orthogonal n×n matrix by modified Gram–Schmidt on Gaussian columns. */
function randomOrthogonal(seed: number, n: number): Float64Array {
  const g = gaussian(seed);
  const cols: Float64Array[] = [];
  while (cols.length < n) {
    const v = Float64Array.from({ length: n }, () => g());
    for (const c of cols) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += c[i] * v[i];
      for (let i = 0; i < n; i++) v[i] -= dot * c[i];
    }
    const norm = Math.hypot(...v);
    for (let i = 0; i < n; i++) v[i] /= norm;
    cols.push(v);
  }
  const q = new Float64Array(n * n);
  cols.forEach((c, j) => c.forEach((x, i) => (q[i * n + j] = x)));
  return q;
}

/** The closed form for covariances with a common eigenbasis: Σ(√a − √b)² + ‖Δμ‖². */
function closedForm(mu1: number[], a: number[], mu2: number[], b: number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (Math.sqrt(a[i]) - Math.sqrt(b[i])) ** 2 + (mu1[i] - mu2[i]) ** 2;
  return s;
}

describe('frechetDistance: closed forms (no reference needed)', () => {
  it('is 0 between identical statistics', () => {
    const x = correlatedSamples(1, 400, 48);
    const { mu, sigma } = new FeatureStats(48).add(x).fidStats();
    for (const method of METHODS) {
      const p = frechetDistanceParts(mu, sigma, mu, sigma, { method });
      // The four terms cancel. M = F ᵀΣF has the eigenvalues λᵢ² of Σ, each computed to within
      // ε·λmax², so √ returns λᵢ to within ε·λmax²/(2λᵢ): a relative error of about κ(Σ)·ε, and
      // these random covariances have κ ~ 10³–10⁴, hence 1e-10·tr Σ.
      expect(Math.abs(p.distance)).toBeLessThan(1e-10 * p.trace1);
      expect(p.rank1).toBe(48);
    }
  });

  it('diagonal covariances: Σ(√a − √b)² + ‖Δμ‖², singular ones included', () => {
    const g = gaussian(2);
    const d = 30;
    const a = Array.from({ length: d }, (_, i) => (i % 7 === 0 ? 0 : 0.1 + g() ** 2));
    const b = Array.from({ length: d }, (_, i) => (i % 5 === 0 ? 0 : 0.1 + g() ** 2));
    const mu1 = Array.from({ length: d }, () => g());
    const mu2 = Array.from({ length: d }, () => g());
    const want = closedForm(mu1, a, mu2, b);
    for (const method of METHODS) {
      // Diagonal input is factored without rounding except in the final square roots: ~ε·d.
      expect(Math.abs(frechetDistance(mu1, diagonal(a), mu2, diagonal(b), { method }) - want)).toBeLessThan(
        1e-13 * want,
      );
    }
    // offset: offset·I added to both inside the square root only (pytorch-fid's fallback):
    // ‖Δμ‖² + Σ a + Σ b − 2·Σ √((a + ε)(b + ε)).
    const eps = 1e-6;
    let withOffset = 0;
    for (let i = 0; i < d; i++)
      withOffset += (mu1[i] - mu2[i]) ** 2 + a[i] + b[i] - 2 * Math.sqrt((a[i] + eps) * (b[i] + eps));
    expect(Math.abs(frechetDistance(mu1, diagonal(a), mu2, diagonal(b), { offset: eps }) - withOffset)).toBeLessThan(
      1e-13 * withOffset,
    );
  });

  it('covariances sharing a random eigenbasis (not diagonal in the standard one), singular ones included', () => {
    const d = 40;
    const q = randomOrthogonal(3, d);
    const g = gaussian(4);
    const a = Array.from({ length: d }, (_, i) => (i < 25 ? 0.5 + g() ** 2 : 0)); // rank 25
    const b = Array.from({ length: d }, (_, i) => (i >= 10 ? 0.5 + g() ** 2 : 0)); // rank 30
    const mu1 = Array.from({ length: d }, () => g());
    const mu2 = mu1.map((m) => m + 0.3);
    const want = closedForm(mu1, a, mu2, b);
    for (const method of METHODS) {
      const p = frechetDistanceParts(mu1, rotated(a, q), mu2, rotated(b, q), { method });
      expect(p.rank1).toBe(25);
      // The rotated inputs carry ~1e-16 rounding, the same in both; zero eigenvalues of the
      // product come back as ±1e-16·‖Σ‖ and enter through √ as ~1e-8 each: 1e-7 relative bound.
      expect(Math.abs(p.distance - want) / want).toBeLessThan(1e-7);
    }
  });

  it('one dimension: (μ1 − μ2)² + (σ1 − σ2)²', () => {
    expect(frechetDistance([1], [4], [-2], [9])).toBeCloseTo(9 + 1, 14);
    expect(frechetDistance([0], [0], [0], [2.25])).toBeCloseTo(2.25, 14);
  });

  it('both methods agree on random full-rank and rank-deficient statistics', () => {
    for (const [d, n1, n2] of [
      [24, 200, 150],
      [40, 15, 60],
    ]) {
      const s1 = new FeatureStats(d).add(correlatedSamples(10 + d, n1, d)).fidStats();
      const s2 = new FeatureStats(d).add(correlatedSamples(20 + d, n2, d, { scale: 1.3, shift: 0.2 })).fidStats();
      const c = frechetDistance(s1.mu, s1.sigma, s2.mu, s2.sigma, { method: 'cholesky' });
      const e = frechetDistance(s1.mu, s1.sigma, s2.mu, s2.sigma, { method: 'eigh' });
      expect(Math.abs(c - e) / c).toBeLessThan(n1 > d ? 1e-12 : 1e-7);
      // Symmetric in its arguments.
      expect(Math.abs(frechetDistance(s2.mu, s2.sigma, s1.mu, s1.sigma) - c) / c).toBeLessThan(n1 > d ? 1e-12 : 1e-7);
    }
  });

  it('refuses inconsistent or invalid input with a clear message', () => {
    const s = diagonal([1, 2]);
    expect(() => frechetDistance([0, 0], s, [0, 0, 0], s)).toThrow(/mu1 and mu2 differ in dimension: 2 vs 3/);
    expect(() => frechetDistance([0, 0], s, [0, 0], diagonal([1, 2, 3]))).toThrow(
      /sigma2 has 9 values, expected 2×2 = 4/,
    );
    expect(() => frechetDistance([0, Number.NaN], s, [0, 0], s)).toThrow(/mu1 has a non-finite value/);
    expect(() => frechetDistance([0, 0], [1, 0.5, 0, 1], [0, 0], s)).toThrow(/sigma1 is not symmetric/);
    expect(() => frechetDistance([0, 0], s, [0, 0], s, { method: 'svd' as 'eigh' })).toThrow(/unknown method 'svd'/);
    expect(() => frechetDistance([], [], [], [])).toThrow(/mu1 is empty/);
    // A negated covariance (whose distance came out 0) is refused by the cheap diagonal check.
    const { mu, sigma } = new FeatureStats(8).add(correlatedSamples(5, 50, 8)).fidStats();
    expect(() =>
      frechetDistance(
        mu,
        sigma,
        mu,
        sigma.map((v) => -v),
      ),
    ).toThrow(/sigma2 is not positive semi-definite: its diagonal entry \[0, 0\] is -/);
  });
});

describe('covarianceDefect: symmetric positive semi-definite within float32 rounding', () => {
  it('accepts sample covariances, singular ones and float32-rounded ones included', () => {
    for (const [n, d] of [
      [400, 48],
      [30, 64], // rank 29: eigenvalues that are 0 up to rounding
      [2, 16],
    ]) {
      const { sigma } = new FeatureStats(d).add(correlatedSamples(n + d, n, d)).fidStats();
      expect(covarianceDefect(sigma, d), `n = ${n}, d = ${d}`).toBeUndefined();
      expect(covarianceDefect(Float32Array.from(sigma), d), `float32, n = ${n}, d = ${d}`).toBeUndefined();
    }
    expect(covarianceDefect(new Float64Array(9), 3)).toBeUndefined();
    expect(covarianceDefect(diagonal([1, 0, 1e-300]), 3)).toBeUndefined();
  });

  it('refuses the rest, saying what is wrong and by how much', () => {
    const d = 32;
    const { sigma } = new FeatureStats(d).add(correlatedSamples(7, 200, d)).fidStats();
    const lambda = (m: ArrayLike<number>) =>
      Number(/smallest eigenvalue is (\S+),/.exec(covarianceDefect(m, d) ?? '')?.[1]);
    // −Σ: the smallest eigenvalue is −λmax(Σ).
    expect(
      covarianceDefect(
        sigma.map((v) => -v),
        d,
      ),
    ).toMatch(/^is not positive semi-definite: its smallest eigenvalue/);
    // Σ − (λ₀ + δ)·vvᵀ, v the eigenvector of Σ's smallest eigenvalue λ₀: the smallest becomes −δ.
    const { values, vectorsT } = symmetricEigen(sigma, d);
    const dent = (depth: number) =>
      sigma.map((x, k) => x - (values[0] + depth) * vectorsT[Math.floor(k / d)] * vectorsT[k % d]);
    expect(lambda(dent(0.01))).toBe(-0.01); // reported to 4 digits
    // Just inside and just outside the tolerance (1e-6·tr Σ).
    let trace = 0;
    for (let i = 0; i < d; i++) trace += sigma[i * d + i];
    expect(covarianceDefect(dent(0.9e-6 * trace), d)).toBeUndefined();
    expect(lambda(dent(1.1e-6 * trace)) / (-1.1e-6 * trace)).toBeCloseTo(1, 3);
    const skew = Float64Array.from(sigma);
    skew[1] += 1e-3 * sigma[0];
    expect(covarianceDefect(skew, d)).toMatch(/^is not symmetric: \|Σ − Σᵀ\| reaches \S+ at \[0, 1\]/);
    const nan = Float64Array.from(sigma);
    nan[d + 2] = Number.NaN;
    expect(covarianceDefect(nan, d)).toBe('has a non-finite value (NaN) at [1, 2]');
  });
});

const py = pythonWith(['numpy', 'scipy']);
if (!py.ok) console.warn(py.why);

describe.skipIf(!py.ok)(
  'frechetDistance against pytorch-fid’s formula with scipy.linalg.sqrtm (needs python3 + numpy + scipy)',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'mdm-metrics-fid-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    // pytorch-fid's calculate_frechet_distance, verbatim apart from the `disp` argument (deprecated
    // in scipy 1.16, removed in 1.18; it only chose whether sqrtm prints its error estimate).
    const script = String.raw`
import json, sys, warnings
import numpy as np
from scipy import linalg
warnings.simplefilter('ignore')

def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    mu1 = np.atleast_1d(mu1); mu2 = np.atleast_1d(mu2)
    sigma1 = np.atleast_2d(sigma1); sigma2 = np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    fallback = False
    if not np.isfinite(covmean).all():
        fallback = True
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError('Imaginary component {}'.format(np.max(np.abs(covmean.imag))))
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)), fallback

out = []
for a, b in zip(sys.argv[1::2], sys.argv[2::2]):
    fa, fb = np.load(a), np.load(b)
    fid, fallback = calculate_frechet_distance(fa['mu'], fa['sigma'], fb['mu'], fb['sigma'])
    out.append({'fid': fid, 'fallback': fallback})
print(json.dumps(out))
`;

    interface Case {
      name: string;
      d: number;
      n1: number;
      n2: number;
      /** Constant (dead) features in both sets. */
      dead?: number;
      /** Relative error allowed against scipy. */
      tol: number;
    }
    // Full rank: both sides are backward-stable float64 computations of a well-conditioned value
    // and agree to ~1e-14; 1e-9 still catches any real mistake. Rank-deficient: the product Σ1·Σ2
    // has exact zero eigenvalues that every float64 method computes as ±ε·‖Σ1‖‖Σ2‖, and their
    // square roots (~1e-8·‖Σ‖ each) enter the trace, so scipy and we differ by ~1e-8 (measured
    // against a 40-digit mpmath evaluation, ours is the closer); 1e-6 as in the brief.
    const cases: Case[] = [
      { name: 'random full rank, d = 8', d: 8, n1: 100, n2: 120, tol: 1e-9 },
      { name: 'random full rank, d = 64', d: 64, n1: 500, n2: 400, tol: 1e-9 },
      { name: 'random full rank, d = 256', d: 256, n1: 1200, n2: 1000, tol: 1e-9 },
      { name: 'rank-deficient (fewer samples than dims), d = 64', d: 64, n1: 30, n2: 40, tol: 1e-6 },
      { name: 'rank-deficient, d = 256, n = 100 / 50', d: 256, n1: 100, n2: 50, tol: 1e-6 },
      { name: 'one side rank-deficient, d = 256, n = 400 / 20', d: 256, n1: 400, n2: 20, tol: 1e-6 },
      { name: 'dead (constant) features, d = 128, n = 500 / 60', d: 128, n1: 500, n2: 60, dead: 10, tol: 1e-6 },
    ];

    it('relative error per case within tolerance, for both factorisations', () => {
      const args: string[] = [];
      const stats = cases.map((c, i) => {
        const stats = [
          correlatedSamples(100 + i, c.n1, c.d),
          correlatedSamples(200 + i, c.n2, c.d, { scale: 1.2, shift: 0.05 }),
        ].map((x, side) => {
          if (c.dead)
            for (let r = 0; r < (side ? c.n2 : c.n1); r++) for (let j = 0; j < c.dead; j++) x[r * c.d + j] = side + 1;
          return new FeatureStats(c.d).add(x).fidStats();
        });
        stats.forEach((s, side) => {
          const path = join(dir, `case${i}-${side}.npz`);
          writeFidStats(path, s);
          args.push(path);
        });
        return stats;
      });
      const ref = JSON.parse(runPython(script, args)) as { fid: number; fallback: boolean }[];
      const report: string[] = [];
      cases.forEach((c, i) => {
        const [a, b] = stats[i];
        for (const method of METHODS) {
          const ours = frechetDistance(a.mu, a.sigma, b.mu, b.sigma, { method });
          const rel = Math.abs(ours - ref[i].fid) / Math.abs(ref[i].fid);
          report.push(
            `${c.name} [${method}]: ours ${ours.toPrecision(12)}, ` +
              `scipy ${ref[i].fid.toPrecision(12)}${ref[i].fallback ? ' (eps fallback)' : ''}, ` +
              `rel ${rel.toExponential(2)}`,
          );
          expect(rel, `${c.name} [${method}]`).toBeLessThan(c.tol);
        }
      });
      console.log(report.join('\n'));

      // pytorch-fid's fallback, forced: offset·I added to both covariances inside sqrtm, the
      // traces left alone. Our `offset` option gives the same number: with the offset both are
      // full rank, so the agreement is that of the full-rank cases (measured ~1e-11 here).
      const forced = String.raw`
import sys, numpy as np, warnings
from scipy import linalg
warnings.simplefilter('ignore')
fa, fb = np.load(sys.argv[1]), np.load(sys.argv[2])
s1, s2 = fa['sigma'], fb['sigma']; diff = fa['mu'] - fb['mu']
offset = np.eye(s1.shape[0]) * 1e-6
c = linalg.sqrtm((s1 + offset).dot(s2 + offset)); c = c.real if np.iscomplexobj(c) else c
print(float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(c)))
`;
      const i = cases.findIndex((c) => c.n1 < c.d);
      const [a, b] = stats[i];
      const withOffset = Number(runPython(forced, [args[2 * i], args[2 * i + 1]]));
      const ours = frechetDistance(a.mu, a.sigma, b.mu, b.sigma, { offset: 1e-6 });
      // Note withOffset − distance: the bias the fallback would bring (~1e-4 relative here).
      console.log(
        `${cases[i].name}, offset 1e-6: ours ${ours}, scipy ${withOffset}, ` +
          `rel ${(Math.abs(ours - withOffset) / withOffset).toExponential(2)}; ` +
          `bias of the offset vs none: ${((withOffset - ref[i].fid) / ref[i].fid).toExponential(2)}`,
      );
      expect(Math.abs(ours - withOffset) / withOffset).toBeLessThan(1e-9);
    });
  },
);
