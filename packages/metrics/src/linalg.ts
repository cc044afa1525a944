/**
 * Dense float64 linear algebra for symmetric matrices, written for the sizes of feature
 * covariances (d up to a few thousand) in plain JavaScript. Matrices are row-major Float64Arrays.
 *
 * - `gemmNT`: C = A·Bᵀ with a 4×2 register tile and cache blocking (both operands are read along
 *   their rows, so every inner loop is contiguous).
 * - `tridiagonalize`: blocked Householder reduction of a symmetric matrix to tridiagonal form
 *   (LAPACK's dsytrd scheme: panels of 32 reflectors, the trailing update as one matrix product);
 *   optionally accumulates Qᵀ.
 * - `tridiagonalEigen`: implicit QL with implicit shifts (EISPACK tql1/tql2), eigenvalues only
 *   or with eigenvectors (stored as rows, so each Givens rotation touches two contiguous rows).
 * - `symmetricEigen`, `symmetricEigenvalues`, `sqrtmPsd`: the above put together.
 * - `pivotedCholesky`: the rank-revealing Cholesky factorisation of a positive semi-definite matrix.
 */

/** A square matrix given as a row-major array of n·n numbers. */
export type SquareMatrix = ArrayLike<number>;

const EPS = 2 ** -52;

/** An n×n Float64Array copy of `a` with (a + aᵀ)/2, so later steps may read either triangle. */
export function symmetrized(a: SquareMatrix, n: number): Float64Array {
  if (a.length !== n * n) throw new RangeError(`expected ${n}×${n} = ${n * n} values, got ${a.length}`);
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    out[i * n + i] = a[i * n + i];
    for (let j = i + 1; j < n; j++) {
      const v = 0.5 * (a[i * n + j] + a[j * n + i]);
      out[i * n + j] = v;
      out[j * n + i] = v;
    }
  }
  return out;
}

export interface GemmOptions {
  /** Write into this m×n array (its previous contents are overwritten). */
  out?: Float64Array;
  /**
   * Compute only the blocks on or below the diagonal (m = n, for a symmetric result), then copy
   * the lower triangle over the upper one.
   */
  symmetric?: boolean;
  /**
   * `rowStart[i]`: row i of A is zero before this column (a triangular factor), so the products
   * skip those columns. The skipped terms are exact zeros: the result is the same.
   */
  rowStart?: Int32Array;
}

/** C (m×n) = A (m×k) · Bᵀ, B being n×k; all row-major. */
export function gemmNT(a: Float64Array, b: Float64Array, m: number, n: number, k: number, options: GemmOptions = {}): Float64Array {
  if (a.length < m * k || b.length < n * k) throw new RangeError('gemmNT: operand too short');
  const c = options.out ?? new Float64Array(m * n);
  if (c.length < m * n) throw new RangeError('gemmNT: output too short');
  c.fill(0, 0, m * n);
  const symmetric = options.symmetric ?? false;
  if (symmetric && m !== n) throw new RangeError('gemmNT: a symmetric product needs m = n');
  gemmNTStrided(1, a, 0, k, b, 0, k, c, 0, n, m, n, k, symmetric, options.rowStart);
  if (symmetric) mirrorLower(c, 0, n, n);
  return c;
}

/** Copies the strictly lower triangle of the m×m block at `off` (row stride ld) over its upper one. */
function mirrorLower(c: Float64Array, off: number, ld: number, m: number): void {
  const B = 32;
  for (let i0 = 0; i0 < m; i0 += B) {
    const i1 = Math.min(m, i0 + B);
    for (let j0 = i0; j0 < m; j0 += B) {
      const j1 = Math.min(m, j0 + B);
      for (let i = i0; i < i1; i++) for (let j = Math.max(j0, i + 1); j < j1; j++) c[off + i * ld + j] = c[off + j * ld + i];
    }
  }
}

const KC = 128;
const NC = 256;

/**
 * C += alpha·A·Bᵀ on strided blocks: A is m×k at aOff with row stride lda, B is n×k at bOff
 * (stride ldb), C is m×n at cOff (stride ldc). `lowerOnly`: only the tiles holding entries with
 * j ≤ i (entries just above the diagonal inside those tiles are updated too). Internal: used by
 * `tridiagonalize` and `FeatureStats`.
 */
export function gemmNTStrided(
  alpha: number,
  a: Float64Array,
  aOff: number,
  lda: number,
  b: Float64Array,
  bOff: number,
  ldb: number,
  c: Float64Array,
  cOff: number,
  ldc: number,
  m: number,
  n: number,
  k: number,
  lowerOnly: boolean,
  rowStart?: Int32Array,
): void {
  const m4 = m - (m % 4);
  for (let k0 = 0; k0 < k; k0 += KC) {
    const k1 = Math.min(k, k0 + KC);
    for (let j0 = 0; j0 < n; j0 += NC) {
      const j1full = Math.min(n, j0 + NC);
      for (let i = 0; i < m; i += 4) {
        const rows = i < m4 ? 4 : m - i;
        let p0 = k0;
        if (rowStart) {
          let s = rowStart[i];
          for (let r = 1; r < rows; r++) s = Math.min(s, rowStart[i + r]);
          if (s >= k1) continue;
          if (s > p0) p0 = s;
        }
        // Lower only: columns j ≤ i + rows − 1 (the diagonal block is computed whole).
        const j1 = lowerOnly ? Math.min(j1full, i + rows) : j1full;
        if (j1 <= j0) continue;
        if (rows === 4) tile4(alpha, a, aOff + i * lda, lda, b, bOff, ldb, c, cOff + i * ldc, ldc, j0, j1, p0, k1);
        else for (let r = 0; r < rows; r++) tile1(alpha, a, aOff + (i + r) * lda, b, bOff, ldb, c, cOff + (i + r) * ldc, j0, j1, p0, k1);
      }
    }
  }
}

/** Four rows of C (starting at c0, stride ldc), columns j0…j1−1, the products over p0…p1−1 added in. */
function tile4(alpha: number, a: Float64Array, a0: number, lda: number, b: Float64Array, bOff: number, ldb: number, c: Float64Array, r0: number, ldc: number, j0: number, j1: number, p0: number, p1: number): void {
  const a1 = a0 + lda;
  const a2 = a1 + lda;
  const a3 = a2 + lda;
  const r1 = r0 + ldc;
  const r2 = r1 + ldc;
  const r3 = r2 + ldc;
  let j = j0;
  for (; j + 1 < j1; j += 2) {
    const b0 = bOff + j * ldb;
    const b1 = b0 + ldb;
    let c00 = 0;
    let c01 = 0;
    let c10 = 0;
    let c11 = 0;
    let c20 = 0;
    let c21 = 0;
    let c30 = 0;
    let c31 = 0;
    for (let p = p0; p < p1; p++) {
      const x0 = b[b0 + p];
      const x1 = b[b1 + p];
      const y0 = a[a0 + p];
      const y1 = a[a1 + p];
      const y2 = a[a2 + p];
      const y3 = a[a3 + p];
      c00 += y0 * x0;
      c01 += y0 * x1;
      c10 += y1 * x0;
      c11 += y1 * x1;
      c20 += y2 * x0;
      c21 += y2 * x1;
      c30 += y3 * x0;
      c31 += y3 * x1;
    }
    c[r0 + j] += alpha * c00;
    c[r0 + j + 1] += alpha * c01;
    c[r1 + j] += alpha * c10;
    c[r1 + j + 1] += alpha * c11;
    c[r2 + j] += alpha * c20;
    c[r2 + j + 1] += alpha * c21;
    c[r3 + j] += alpha * c30;
    c[r3 + j + 1] += alpha * c31;
  }
  if (j < j1) {
    const b0 = bOff + j * ldb;
    let c0 = 0;
    let c1 = 0;
    let c2 = 0;
    let c3 = 0;
    for (let p = p0; p < p1; p++) {
      const x = b[b0 + p];
      c0 += a[a0 + p] * x;
      c1 += a[a1 + p] * x;
      c2 += a[a2 + p] * x;
      c3 += a[a3 + p] * x;
    }
    c[r0 + j] += alpha * c0;
    c[r1 + j] += alpha * c1;
    c[r2 + j] += alpha * c2;
    c[r3 + j] += alpha * c3;
  }
}

function tile1(alpha: number, a: Float64Array, a0: number, b: Float64Array, bOff: number, ldb: number, c: Float64Array, r0: number, j0: number, j1: number, p0: number, p1: number): void {
  for (let j = j0; j < j1; j++) {
    const b0 = bOff + j * ldb;
    let s = 0;
    for (let p = p0; p < p1; p++) s += a[a0 + p] * b[b0 + p];
    c[r0 + j] += alpha * s;
  }
}

/** The transpose of an m×n row-major matrix (n×m). */
export function transpose(a: Float64Array, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  const B = 32;
  for (let i0 = 0; i0 < m; i0 += B) {
    const i1 = Math.min(m, i0 + B);
    for (let j0 = 0; j0 < n; j0 += B) {
      const j1 = Math.min(n, j0 + B);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[j * m + i] = a[i * n + j];
    }
  }
  return out;
}

export interface Tridiagonal {
  /** The n diagonal entries. */
  diag: Float64Array;
  /** The n − 1 entries beside the diagonal: off[i] couples i and i + 1. */
  off: Float64Array;
  /** Qᵀ (row-major n×n) with A = Q·T·Qᵀ, when asked for. */
  qt?: Float64Array;
}

const NB = 32;

/**
 * Householder reduction of the symmetric n×n matrix `a` (only its upper triangle is read; the
 * array is overwritten) to a tridiagonal T = Qᵀ·A·Q, blocked as LAPACK's dsytrd/dlatrd: within a
 * panel of NB columns each reflector needs one product of the trailing matrix with a vector
 * (full rows, four at a time) plus corrections from the panel's earlier reflectors; the trailing
 * matrix is then updated once per panel, A ← A − V·Wᵀ − W·Vᵀ, as a matrix product.
 */
export function tridiagonalize(a: Float64Array, n: number, options: { wantQ?: boolean } = {}): Tridiagonal {
  if (a.length < n * n) throw new RangeError(`tridiagonalize: expected ${n * n} values`);
  const diag = new Float64Array(n);
  const off = new Float64Array(Math.max(0, n - 1));
  const betas = new Float64Array(n);
  // Full symmetric storage from here on (the products below read whole rows).
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[j * n + i] = a[i * n + j];
  const W2 = 2 * NB;
  const vw = new Float64Array(n * W2); // row t: V[t, 0…NB−1], then W[t, 0…NB−1]
  const wv = new Float64Array(n * W2); // row t: W[t, …], then V[t, …]
  const v = new Float64Array(n);
  const y = new Float64Array(n);
  const wtv = new Float64Array(NB);
  const vtv = new Float64Array(NB);
  const last = n - 2; // columns 0…n−3 get a reflector
  for (let k0 = 0; k0 < last; k0 += NB) {
    const kend = Math.min(last, k0 + NB);
    vw.fill(0, k0 * W2);
    for (let j = k0; j < kend; j++) {
      const ic = j - k0;
      const row = j * n;
      const rj = j * W2;
      // Row j (from the diagonal on) brought up to date with this panel's earlier reflectors.
      if (ic > 0) {
        for (let t = j; t < n; t++) {
          const rt = t * W2;
          let s = 0;
          for (let c = 0; c < ic; c++) s += vw[rt + c] * vw[rj + NB + c] + vw[rt + NB + c] * vw[rj + c];
          a[row + t] -= s;
        }
      }
      diag[j] = a[row + j];
      // x = a[j, j+1 …], scaled by its largest entry so the sum of squares cannot overflow.
      let scale = 0;
      for (let t = j + 1; t < n; t++) scale = Math.max(scale, Math.abs(a[row + t]));
      let tail = 0; // ‖x[1…]‖² (scaled)
      for (let t = j + 2; t < n; t++) {
        const u = a[row + t] / scale;
        tail += u * u;
      }
      if (scale === 0 || tail === 0) {
        off[j] = a[row + j + 1]; // already tridiagonal in this row: H = I, V and W columns stay 0
        betas[j] = 0;
        continue;
      }
      const x0 = a[row + j + 1] / scale;
      const norm = Math.sqrt(x0 * x0 + tail);
      const alpha = x0 > 0 ? -norm : norm; // H·x = alpha·e1, the sign against cancellation
      off[j] = alpha * scale;
      // v = x/scale − alpha·e1 (kept in row j for Q), β = 2 / vᵀv.
      a[row + j + 1] = x0 - alpha;
      for (let t = j + 2; t < n; t++) a[row + t] /= scale;
      const beta = 2 / ((x0 - alpha) * (x0 - alpha) + tail);
      betas[j] = beta;
      for (let t = j + 1; t < n; t++) {
        v[t] = a[row + t];
        vw[t * W2 + ic] = v[t];
      }
      // y = A·v over the trailing block (rows and columns j+1…, untouched since the panel began) …
      trailingProduct(a, n, j + 1, v, y);
      // … minus the panel's pending updates: y −= V·(Wᵀv) + W·(Vᵀv).
      if (ic > 0) {
        wtv.fill(0);
        vtv.fill(0);
        for (let t = j + 1; t < n; t++) {
          const rt = t * W2;
          const vt = v[t];
          for (let c = 0; c < ic; c++) {
            vtv[c] += vw[rt + c] * vt;
            wtv[c] += vw[rt + NB + c] * vt;
          }
        }
        for (let t = j + 1; t < n; t++) {
          const rt = t * W2;
          let s = 0;
          for (let c = 0; c < ic; c++) s += vw[rt + c] * wtv[c] + vw[rt + NB + c] * vtv[c];
          y[t] -= s;
        }
      }
      // p = β·y, w = p − (β/2)(pᵀv)·v.
      let pv = 0;
      for (let t = j + 1; t < n; t++) pv += y[t] * v[t];
      const half = 0.5 * beta * beta * pv;
      for (let t = j + 1; t < n; t++) vw[t * W2 + NB + ic] = beta * y[t] - half * v[t];
    }
    // Trailing update, rows and columns kend…: A −= [V W]·[W V]ᵀ (lower tiles, then mirrored).
    for (let t = kend; t < n; t++) {
      const rt = t * W2;
      for (let c = 0; c < NB; c++) {
        wv[rt + c] = vw[rt + NB + c];
        wv[rt + NB + c] = vw[rt + c];
      }
    }
    const m = n - kend;
    gemmNTStrided(-1, vw, kend * W2, W2, wv, kend * W2, W2, a, kend * n + kend, n, m, m, W2, true);
    mirrorLower(a, kend * n + kend, n, m);
  }
  if (n >= 2) {
    diag[n - 2] = a[(n - 2) * n + n - 2];
    off[n - 2] = a[(n - 2) * n + n - 1];
  }
  if (n >= 1) diag[n - 1] = a[n * n - 1];
  if (!options.wantQ) return { diag, off };

  // Qᵀ = H_{n−3}·…·H_0, accumulated from the right (Y ← Y·H_k for k = n−3 … 0): Y·H_k changes
  // only columns k+1…, and Y is still the identity outside rows/columns k+1…, so each step is
  // one pass over that block, each row getting  y ← y − β(y·v)vᵀ.
  const qt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) qt[i * n + i] = 1;
  for (let k = n - 3; k >= 0; k--) {
    const beta = betas[k];
    if (beta === 0) continue;
    const row = k * n;
    for (let i = k + 1; i < n; i++) {
      const ri = i * n;
      let s = 0;
      for (let j = k + 1; j < n; j++) s += qt[ri + j] * a[row + j];
      if (s === 0) continue;
      s *= beta;
      for (let j = k + 1; j < n; j++) qt[ri + j] -= s * a[row + j];
    }
  }
  return { diag, off, qt };
}

/** y[t] = Σ_{q ≥ from} a[t, q]·v[q] for t ≥ from (n×n row-major), four rows at a time. */
function trailingProduct(a: Float64Array, n: number, from: number, v: Float64Array, y: Float64Array): void {
  let t = from;
  for (; t + 3 < n; t += 4) {
    const r0 = t * n;
    const r1 = r0 + n;
    const r2 = r1 + n;
    const r3 = r2 + n;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let q = from; q < n; q++) {
      const x = v[q];
      s0 += a[r0 + q] * x;
      s1 += a[r1 + q] * x;
      s2 += a[r2 + q] * x;
      s3 += a[r3 + q] * x;
    }
    y[t] = s0;
    y[t + 1] = s1;
    y[t + 2] = s2;
    y[t + 3] = s3;
  }
  for (; t < n; t++) {
    const r = t * n;
    let s = 0;
    for (let q = from; q < n; q++) s += a[r + q] * v[q];
    y[t] = s;
  }
}

/**
 * Eigenvalues (ascending) of a symmetric tridiagonal matrix by the implicit QL method (EISPACK
 * tql1/tql2, as in JAMA). With `vectorsT` (row-major n×n, e.g. Qᵀ from `tridiagonalize`, or the
 * identity), each rotation is applied to its rows i and i+1, so on return row j holds the
 * eigenvector of eigenvalue j (the rows are reordered with the sort).
 */
export function tridiagonalEigen(diag: Float64Array, off: Float64Array, vectorsT?: Float64Array): Float64Array {
  const n = diag.length;
  const d = Float64Array.from(diag);
  const e = new Float64Array(n);
  e.set(off.subarray(0, Math.max(0, n - 1)));
  const z = vectorsT;
  let f = 0;
  let tst1 = 0;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]) > EPS * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) throw new Error(`tridiagonalEigen: no convergence for eigenvalue ${l} after 60 QL iterations`);
        // Implicit shift from the leading 2×2 block.
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        // QL sweep from m − 1 down to l.
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          if (z) {
            const zi = i * n;
            const zj = zi + n;
            for (let q = 0; q < n; q++) {
              const t = z[zj + q];
              const u = z[zi + q];
              z[zj + q] = s * u + c * t;
              z[zi + q] = c * u - s * t;
            }
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > EPS * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
  // Sort ascending (with the vectors).
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[x] - d[y]);
  const sorted = Float64Array.from(order, (i) => d[i]);
  if (z) {
    const copy = Float64Array.from(z.subarray(0, n * n));
    for (let j = 0; j < n; j++) z.set(copy.subarray(order[j] * n, order[j] * n + n), j * n);
  }
  return sorted;
}

/** Eigenvalues (ascending) of a symmetric n×n matrix (only the upper triangle is read). */
export function symmetricEigenvalues(a: SquareMatrix, n: number): Float64Array {
  const work = Float64Array.from(a as ArrayLike<number>);
  if (work.length !== n * n) throw new RangeError(`expected ${n}×${n} = ${n * n} values, got ${work.length}`);
  const { diag, off } = tridiagonalize(work, n);
  return tridiagonalEigen(diag, off);
}

export interface SymmetricEigen {
  /** Ascending eigenvalues. */
  values: Float64Array;
  /** Row j (row-major n×n) is the unit eigenvector of values[j]: A = Vᵀ·diag(values)·V with V these rows. */
  vectorsT: Float64Array;
}

/** Eigenvalues and eigenvectors of a symmetric n×n matrix (only the upper triangle is read). */
export function symmetricEigen(a: SquareMatrix, n: number): SymmetricEigen {
  const work = Float64Array.from(a as ArrayLike<number>);
  if (work.length !== n * n) throw new RangeError(`expected ${n}×${n} = ${n * n} values, got ${work.length}`);
  const { diag, off, qt } = tridiagonalize(work, n, { wantQ: true });
  const vectorsT = qt as Float64Array;
  const values = tridiagonalEigen(diag, off, vectorsT);
  return { values, vectorsT };
}

/**
 * The principal square root of a symmetric positive semi-definite matrix, V·diag(√λ₊)·Vᵀ, with
 * negative eigenvalues (rounding noise of a PSD matrix) clipped to 0.
 */
export function sqrtmPsd(a: SquareMatrix, n: number): Float64Array {
  const { values, vectorsT } = symmetricEigen(a, n);
  // W = rows of Vᵀ scaled by λ^¼, so W ᵀW = V·diag(√λ)·Vᵀ: one symmetric product.
  const w = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const s = Math.sqrt(Math.sqrt(Math.max(0, values[j])));
    for (let q = 0; q < n; q++) w[j * n + q] = vectorsT[j * n + q] * s;
  }
  const wt = transpose(w, n, n);
  return gemmNT(wt, wt, n, n, n, { symmetric: true });
}

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
