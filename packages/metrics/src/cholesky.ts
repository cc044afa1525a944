/** The rank-revealing (pivoted) Cholesky factorisation of a positive semi-definite matrix. */
import { EPS, type SquareMatrix } from './matrix.js';

export interface PivotedCholesky {
  /** The numerical rank r: the number of columns of the factor. */
  rank: number;
  /** perm[i]: the original index of the i-th pivot (a permutation of 0…n−1). */
  perm: Int32Array;
  /**
   * Lᵀ, row-major r×n: with P the permutation, A[perm[i], perm[j]] ≈ Σ_p L[i,p]·L[j,p]. L is lower
   * trapezoidal, so row p of Lᵀ is zero before column p.
   */
  lt: Float64Array;
}

/**
 * The pivoted (rank-revealing) Cholesky factorisation of a symmetric positive semi-definite
 * matrix (LAPACK dpstrf's algorithm, left-looking): at each step the largest remaining diagonal
 * entry is the pivot; it stops when that entry is ≤ `tol` (default n·ε·max diag, LAPACK's), so a
 * singular matrix gives a factor with fewer columns.
 */
export function pivotedCholesky(a: SquareMatrix, n: number, options: { tol?: number } = {}): PivotedCholesky {
  if (a.length !== n * n) throw new RangeError(`expected ${n}×${n} = ${n * n} values, got ${a.length}`);
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  const dg = new Float64Array(n);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) {
    dg[i] = a[i * n + i];
    maxDiag = Math.max(maxDiag, dg[i]);
  }
  const tol = options.tol ?? n * EPS * maxDiag;
  // Rows of L, row i holding L[i, 0…k−1] (n×n storage, only the first `rank` columns used).
  const l = new Float64Array(n * n);
  let rank = 0;
  for (let k = 0; k < n; k++) {
    let q = k;
    for (let i = k + 1; i < n; i++) if (dg[i] > dg[q]) q = i;
    if (!(dg[q] > tol)) break;
    if (q !== k) {
      [perm[k], perm[q]] = [perm[q], perm[k]];
      [dg[k], dg[q]] = [dg[q], dg[k]];
      for (let p = 0; p < k; p++) {
        const t = l[k * n + p];
        l[k * n + p] = l[q * n + p];
        l[q * n + p] = t;
      }
    }
    const lkk = Math.sqrt(dg[k]);
    const rk = k * n;
    l[rk + k] = lkk;
    const arow = perm[k] * n;
    // Column k below the pivot: (A[pk, pi] − L[i, :k]·L[k, :k]) / L[k,k], four rows at a time.
    let i = k + 1;
    for (; i + 3 < n; i += 4) {
      const r0 = i * n;
      const r1 = r0 + n;
      const r2 = r1 + n;
      const r3 = r2 + n;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let p = 0; p < k; p++) {
        const x = l[rk + p];
        s0 += l[r0 + p] * x;
        s1 += l[r1 + p] * x;
        s2 += l[r2 + p] * x;
        s3 += l[r3 + p] * x;
      }
      const v0 = (a[arow + perm[i]] - s0) / lkk;
      const v1 = (a[arow + perm[i + 1]] - s1) / lkk;
      const v2 = (a[arow + perm[i + 2]] - s2) / lkk;
      const v3 = (a[arow + perm[i + 3]] - s3) / lkk;
      l[r0 + k] = v0;
      l[r1 + k] = v1;
      l[r2 + k] = v2;
      l[r3 + k] = v3;
      dg[i] -= v0 * v0;
      dg[i + 1] -= v1 * v1;
      dg[i + 2] -= v2 * v2;
      dg[i + 3] -= v3 * v3;
    }
    for (; i < n; i++) {
      const ri = i * n;
      let s = 0;
      for (let p = 0; p < k; p++) s += l[ri + p] * l[rk + p];
      const v = (a[arow + perm[i]] - s) / lkk;
      l[ri + k] = v;
      dg[i] -= v * v;
    }
    rank = k + 1;
  }
  const lt = new Float64Array(rank * n);
  for (let i = 0; i < n; i++) for (let p = 0; p < Math.min(rank, i + 1); p++) lt[p * n + i] = l[i * n + p];
  return { rank, perm, lt };
}
