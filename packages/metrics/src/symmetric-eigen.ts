/**
 * The symmetric eigenproblem in float64:
 * - `tridiagonalize`: blocked Householder reduction to tridiagonal form (LAPACK's dsytrd scheme:
 *   panels of 32 reflectors, the trailing update as one matrix product); optionally accumulates Qᵀ.
 * - `tridiagonalEigen`: implicit QL with implicit shifts (EISPACK tql1/tql2), eigenvalues only or
 *   with eigenvectors (stored as rows, so each Givens rotation touches two contiguous rows).
 * - `symmetricEigen`, `symmetricEigenvalues`, `sqrtmPsd`: the above put together.
 */
import { EPS, type SquareMatrix, gemmNT, gemmNTStrided, mirrorLower, transpose } from './matrix.js';

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
