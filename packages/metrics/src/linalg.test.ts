import { describe, expect, it } from 'vitest';
import { gemmNT, pivotedCholesky, sqrtmPsd, symmetricEigen, symmetricEigenvalues, transpose } from './linalg.js';
import { gaussian } from './test-helpers.js';

function randomMatrix(seed: number, m: number, n: number): Float64Array {
  const g = gaussian(seed);
  return Float64Array.from({ length: m * n }, () => g());
}

/** A random symmetric n×n matrix. */
function randomSymmetric(seed: number, n: number): Float64Array {
  const a = randomMatrix(seed, n, n);
  const s = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s[i * n + j] = a[i * n + j] + a[j * n + i];
  return s;
}

/** B·Bᵀ for a random n×r B: PSD of rank min(n, r). */
function randomPsd(seed: number, n: number, r: number): Float64Array {
  const b = randomMatrix(seed, n, r);
  return gemmNT(b, b, n, n, r);
}

function naiveNT(a: Float64Array, b: Float64Array, m: number, n: number, k: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) c[i * n + j] += a[i * k + p] * b[j * k + p];
  return c;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// Tolerances: every routine here is backward stable, so results agree with exact arithmetic to
// a small multiple of n·ε·‖A‖ (ε = 2.2e-16); 1e-12·‖A‖ leaves a wide margin at these sizes.
describe('gemmNT', () => {
  it('matches the naive product for sizes off the 4×2 tile and the cache blocks', () => {
    for (const [m, n, k] of [
      [1, 1, 1],
      [3, 5, 7],
      [9, 6, 130],
      [17, 261, 33],
    ]) {
      const a = randomMatrix(m + n, m, k);
      const b = randomMatrix(k + 1, n, k);
      expect(maxDiff(gemmNT(a, b, m, n, k), naiveNT(a, b, m, n, k))).toBeLessThan(1e-12 * k);
    }
  });

  it('symmetric products and triangular row starts give the same numbers', () => {
    const n = 67;
    const k = 150;
    // Rows of a zero before rowStart[i] (a trapezoidal factor).
    const a = randomMatrix(5, n, k);
    const rowStart = Int32Array.from({ length: n }, (_, i) => Math.min(k, 2 * i));
    for (let i = 0; i < n; i++) for (let p = 0; p < rowStart[i]; p++) a[i * k + p] = 0;
    const full = naiveNT(a, a, n, n, k);
    expect(maxDiff(gemmNT(a, a, n, n, k, { symmetric: true }), full)).toBeLessThan(1e-12 * k);
    expect(maxDiff(gemmNT(a, a, n, n, k, { symmetric: true, rowStart }), full)).toBeLessThan(1e-12 * k);
    const b = randomMatrix(6, 40, k);
    expect(maxDiff(gemmNT(a, b, n, 40, k, { rowStart }), naiveNT(a, b, n, 40, k))).toBeLessThan(1e-12 * k);
  });

  it('transpose', () => {
    const a = randomMatrix(1, 37, 45);
    const t = transpose(a, 37, 45);
    for (let i = 0; i < 37; i++) for (let j = 0; j < 45; j++) expect(t[j * 37 + i]).toBe(a[i * 45 + j]);
  });
});

describe('symmetric eigendecomposition (Householder + implicit QL)', () => {
  it('reconstructs A = Vᵀ·diag(λ)·V with orthonormal V, across the panel width (n = 1…70)', () => {
    for (const n of [1, 2, 3, 5, 31, 32, 33, 64, 70]) {
      const a = randomSymmetric(n, n);
      const { values, vectorsT } = symmetricEigen(a, n);
      for (let i = 1; i < n; i++) expect(values[i]).toBeGreaterThanOrEqual(values[i - 1]);
      const scaled = new Float64Array(n * n);
      for (let j = 0; j < n; j++) for (let q = 0; q < n; q++) scaled[j * n + q] = vectorsT[j * n + q] * values[j];
      // A = Σ_j λ_j v_j v_jᵀ = (Vᵀ-rows scaled)ᵀ·Vᵀ-rows.
      const recon = gemmNT(transpose(scaled, n, n), transpose(vectorsT, n, n), n, n, n);
      expect(maxDiff(recon, a)).toBeLessThan(1e-12 * maxAbs(a) * n);
      const gram = gemmNT(vectorsT, vectorsT, n, n, n);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) expect(Math.abs(gram[i * n + j] - (i === j ? 1 : 0))).toBeLessThan(1e-12 * n);
      const only = symmetricEigenvalues(a, n);
      expect(maxDiff(only, values)).toBeLessThan(1e-12 * maxAbs(values) * n);
    }
  });

  it('the second-difference matrix has eigenvalues 2 − 2·cos(kπ/(n+1))', () => {
    const n = 100;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      a[i * n + i] = 2;
      if (i + 1 < n) a[i * n + i + 1] = a[(i + 1) * n + i] = -1;
    }
    const values = symmetricEigenvalues(a, n);
    for (let k = 1; k <= n; k++) expect(values[k - 1]).toBeCloseTo(2 - 2 * Math.cos((k * Math.PI) / (n + 1)), 13);
  });

  it('handles matrices that are already diagonal or zero, and repeated eigenvalues', () => {
    const n = 40;
    const diag = new Float64Array(n * n);
    for (let i = 0; i < n; i++) diag[i * n + i] = (i % 5) - 2;
    expect(Array.from(symmetricEigenvalues(diag, n))).toEqual(
      Array.from({ length: n }, (_, i) => Math.floor(i / 8) - 2),
    );
    expect(Array.from(symmetricEigenvalues(new Float64Array(n * n), n))).toEqual(new Array(n).fill(0));
  });

  it('sqrtmPsd squares back to the matrix, also when singular', () => {
    for (const [n, r] of [
      [20, 20],
      [45, 12],
    ]) {
      const a = randomPsd(n + r, n, r);
      const s = sqrtmPsd(a, n);
      expect(maxDiff(gemmNT(s, s, n, n, n), a)).toBeLessThan(1e-10 * maxAbs(a));
    }
  });
});

describe('pivotedCholesky', () => {
  it('factors a positive definite matrix exactly (rank n)', () => {
    const n = 50;
    const a = randomPsd(9, n, 80);
    const { rank, perm, lt } = pivotedCholesky(a, n);
    expect(rank).toBe(n);
    const llt = gemmNT(transpose(lt, rank, n), transpose(lt, rank, n), n, n, rank);
    let err = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) err = Math.max(err, Math.abs(llt[i * n + j] - a[perm[i] * n + perm[j]]));
    expect(err).toBeLessThan(1e-12 * maxAbs(a));
  });

  it('reveals the rank of a singular PSD matrix', () => {
    const n = 60;
    for (const r of [0, 1, 7, 33]) {
      const a = r === 0 ? new Float64Array(n * n) : randomPsd(r, n, r);
      const { rank, perm, lt } = pivotedCholesky(a, n);
      expect(rank).toBe(r);
      if (r === 0) continue;
      const llt = gemmNT(transpose(lt, rank, n), transpose(lt, rank, n), n, n, rank);
      let err = 0;
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) err = Math.max(err, Math.abs(llt[i * n + j] - a[perm[i] * n + perm[j]]));
      expect(err).toBeLessThan(1e-12 * maxAbs(a));
      // Lᵀ row p is zero before column p (the triangular shape the products rely on).
      for (let p = 0; p < rank; p++) for (let i = 0; i < p; i++) expect(lt[p * n + i]).toBe(0);
    }
  });
});
