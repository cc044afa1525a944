/**
 * Dense float64 matrix products for symmetric matrices, written for the sizes of feature
 * covariances (d up to a few thousand) in plain JavaScript. Matrices are row-major Float64Arrays.
 * `gemmNT`: C = A·Bᵀ with a 4×2 register tile and cache blocking (both operands are read along
 * their rows, so every inner loop is contiguous).
 */

/** A square matrix given as a row-major array of n·n numbers. */
export type SquareMatrix = ArrayLike<number>;

/** Float64 machine epsilon. */
export const EPS = 2 ** -52;

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
export function gemmNT(
  a: Float64Array,
  b: Float64Array,
  m: number,
  n: number,
  k: number,
  options: GemmOptions = {},
): Float64Array {
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
export function mirrorLower(c: Float64Array, off: number, ld: number, m: number): void {
  const B = 32;
  for (let i0 = 0; i0 < m; i0 += B) {
    const i1 = Math.min(m, i0 + B);
    for (let j0 = i0; j0 < m; j0 += B) {
      const j1 = Math.min(m, j0 + B);
      for (let i = i0; i < i1; i++)
        for (let j = Math.max(j0, i + 1); j < j1; j++) c[off + i * ld + j] = c[off + j * ld + i];
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
        else
          for (let r = 0; r < rows; r++)
            tile1(alpha, a, aOff + (i + r) * lda, b, bOff, ldb, c, cOff + (i + r) * ldc, j0, j1, p0, k1);
      }
    }
  }
}

/** Four rows of C (starting at c0, stride ldc), columns j0…j1−1, the products over p0…p1−1 added in. */
function tile4(
  alpha: number,
  a: Float64Array,
  a0: number,
  lda: number,
  b: Float64Array,
  bOff: number,
  ldb: number,
  c: Float64Array,
  r0: number,
  ldc: number,
  j0: number,
  j1: number,
  p0: number,
  p1: number,
): void {
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

function tile1(
  alpha: number,
  a: Float64Array,
  a0: number,
  b: Float64Array,
  bOff: number,
  ldb: number,
  c: Float64Array,
  r0: number,
  j0: number,
  j1: number,
  p0: number,
  p1: number,
): void {
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
