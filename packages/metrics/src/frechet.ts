import { gemmNT, pivotedCholesky, symmetricEigen, symmetricEigenvalues, symmetrized } from './linalg.js';

/**
 * The Fréchet distance between two Gaussians N(μ1, Σ1) and N(μ2, Σ2) (FID when the statistics are
 * those of Inception features):
 *
 *   d² = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2·tr √(Σ1^½ Σ2 Σ1^½)
 *
 * computed in float64. pytorch-fid evaluates the last term as tr sqrtm(Σ1·Σ2) with scipy, a
 * square root of a non-symmetric matrix; here it is the square root of a symmetric positive
 * semi-definite matrix with the same eigenvalues. With any factor F, F·Fᵀ = Σ1, the matrix
 * M = Fᵀ·Σ2·F has the nonzero eigenvalues of Σ1^½·Σ2·Σ1^½ (and of Σ1·Σ2): with F = Σ1^½ it *is*
 * that matrix, and any other F = Σ1^½·U (U with orthonormal columns) gives Uᵀ·(Σ1^½Σ2Σ1^½)·U. So
 * tr √(Σ1^½Σ2Σ1^½) = Σ √λᵢ(M), the eigenvalues from a symmetric eigensolver, with the tiny
 * negative ones that rounding leaves on a singular M clipped to 0.
 *
 * Two factors are available:
 * - `'cholesky'` (default): the pivoted (rank-revealing) Cholesky factor of Σ1, F = Pᵀ·L, whose
 *   triangular shape also halves the products. With the Householder tridiagonalisation of M
 *   that is about 1.5·d³ multiply-adds: d = 2048 takes ~20 s, d = 1024 ~3 s (one busy core).
 * - `'eigh'`: F = V·diag(√λ₊) from the symmetric eigendecomposition Σ1 = V·diag(λ)·Vᵀ, i.e. M
 *   is Σ1^½Σ2Σ1^½ itself written in Σ1's eigenbasis. The eigenvectors make it ~4× slower
 *   (d = 1024: ~14 s); it is there to cross-check the default.
 *
 * Both assume what every sample covariance is, symmetric positive semi-definite: directions in
 * which Σ1 is not (Cholesky pivots ≤ d·ε·max Σ1ᵢᵢ, eigenvalues ≤ d·ε·λmax) are left out of F as
 * numerical null space, and negative eigenvalues of M are clipped (see `clipped`). Symmetry and
 * the sign of the diagonal are checked here; the full PSD test, `covarianceDefect`, costs about
 * a seventh of the distance per covariance and is left to whoever reads statistics from a file
 * (`readFidStats` applies it).
 *
 * Singular covariances (fewer samples than dimensions, dead features): pytorch-fid adds
 * eps·I (eps = 1e-6) to both covariances when scipy's sqrtm of the singular product comes back
 * non-finite. Nothing here can come back non-finite for PSD input (every square root is of a
 * clipped eigenvalue of a symmetric matrix; a singular Σ1 just gives a factor with fewer
 * columns), so no offset is added: the result is the distance of the covariances as given.
 * The offset would bias it: pytorch-fid's fallback keeps tr Σ1 + tr Σ2 of the covariances given
 * but takes tr √((Σ1 + εI)(Σ2 + εI)), which is larger — by about √(ε·λ) per direction in which
 * one covariance is singular and the other has variance λ — so the distance comes out smaller
 * (by 2·10⁻⁴ relative for 64-d covariances of 30 and 40 samples). Our exact
 * value agrees with scipy's sqrtm (when that succeeds) to ~1e-8 on such singular input and
 * ~1e-13 on full-rank input. `offset` reproduces the fallback's number when wanted.
 */
export interface FrechetOptions {
  /** Factor of Σ1 used to symmetrise the product (default `'cholesky'`). */
  method?: 'cholesky' | 'eigh';
  /**
   * Add offset·I to both covariances inside the square-root term only, exactly as pytorch-fid's
   * fallback does (eps = 1e-6; its traces stay those of the covariances given). Default 0.
   */
  offset?: number;
}

export interface FrechetParts {
  /** The squared Fréchet distance (what FID reports). */
  distance: number;
  /** ‖μ1 − μ2‖². */
  meanTerm: number;
  /** tr Σ1, tr Σ2 (of the covariances given). */
  trace1: number;
  trace2: number;
  /** tr √(Σ1^½ Σ2 Σ1^½) (of the offset covariances, with `offset`). */
  traceSqrt: number;
  /** Numerical rank of Σ1 (the number of columns of its factor). */
  rank1: number;
  /**
   * Sum of |λ| over the negative eigenvalues of Σ1^½Σ2Σ1^½ that were clipped to 0 (rounding noise
   * for PSD input, of the order of 1e-16·‖Σ1‖·‖Σ2‖ each; large values mean a covariance was not PSD).
   */
  clipped: number;
}

function toFloat64(name: string, x: ArrayLike<number>, length: number): Float64Array {
  if (x.length !== length) throw new RangeError(`${name} has ${x.length} values, expected ${length}`);
  const out = Float64Array.from(x);
  for (let i = 0; i < length; i++)
    if (!Number.isFinite(out[i])) throw new RangeError(`${name} has a non-finite value (${out[i]}) at index ${i}`);
  return out;
}

/** Dimension d of the statistics, checking that the four arrays agree. */
function dimensionOf(
  mu1: ArrayLike<number>,
  sigma1: ArrayLike<number>,
  mu2: ArrayLike<number>,
  sigma2: ArrayLike<number>,
): number {
  const d = mu1.length;
  if (d === 0) throw new RangeError('mu1 is empty');
  if (mu2.length !== d) throw new RangeError(`mu1 and mu2 differ in dimension: ${d} vs ${mu2.length}`);
  if (sigma1.length !== d * d)
    throw new RangeError(`sigma1 has ${sigma1.length} values, expected ${d}×${d} = ${d * d}`);
  if (sigma2.length !== d * d)
    throw new RangeError(`sigma2 has ${sigma2.length} values, expected ${d}×${d} = ${d * d}`);
  return d;
}

/** Largest |Σ − Σᵀ| tolerated, relative to max |Σ|: float32 round trips and summation order leave ~1e-7. */
const ASYMMETRY = 1e-6;

/**
 * Most negative eigenvalue tolerated, relative to Σᵢ|Σᵢᵢ| (= tr Σ for a covariance). Statistics
 * often come from float32 (activations, or a covariance saved as float32): rounding every entry
 * to float32 moves each eigenvalue by at most ‖E‖₂ ≤ ‖E‖_F ≤ 2⁻²⁴·‖Σ‖_F ≤ 2⁻²⁴·tr Σ ≈ 6e-8·tr Σ
 * (‖Σ‖_F ≤ tr Σ for a PSD Σ), so 1e-6 leaves a margin of 16 for float32 arithmetic in whatever
 * computed Σ. An eigenvalue −δ moves the distance by about δ, so what passes cannot matter.
 */
const NEGATIVITY = 1e-6;

/** A number for a message: 4 significant digits. */
const g = (x: number): string => String(Number(x.toPrecision(4)));

function asymmetry(s: ArrayLike<number>, d: number): string | undefined {
  let maxAbs = 0;
  let maxAsym = 0;
  let at = '';
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      maxAbs = Math.max(maxAbs, Math.abs(s[i * d + j]), Math.abs(s[j * d + i]));
      const asym = Math.abs(s[i * d + j] - s[j * d + i]);
      if (asym > maxAsym) [maxAsym, at] = [asym, `[${i}, ${j}]`];
    }
  }
  if (maxAsym > ASYMMETRY * maxAbs)
    return `is not symmetric: |Σ − Σᵀ| reaches ${g(maxAsym)} at ${at}, over 1e-6·max |Σ| = ${g(ASYMMETRY * maxAbs)}`;
  return undefined;
}

function negativityTolerance(s: ArrayLike<number>, d: number): number {
  let sum = 0;
  for (let i = 0; i < d; i++) sum += Math.abs(s[i * d + i]);
  return NEGATIVITY * sum;
}

/**
 * Why `sigma` (row-major d×d) is not a covariance matrix — a non-finite value, not symmetric, or
 * not positive semi-definite (an eigenvalue below −1e-6·tr Σ) — or undefined if it is one.
 *
 * The PSD test is a Cholesky factorisation of Σ + τI (τ the tolerance), which succeeds exactly
 * when every eigenvalue of Σ exceeds −τ: d³/6 multiply-adds, ~2.5 s at d = 2048 where
 * `frechetDistance` takes ~17 s. Only when it fails are the eigenvalues computed (another
 * ~10 s at d = 2048), to confirm and to report the smallest.
 */
export function covarianceDefect(sigma: ArrayLike<number>, d: number): string | undefined {
  if (sigma.length !== d * d) throw new RangeError(`expected ${d}×${d} = ${d * d} values, got ${sigma.length}`);
  for (let k = 0; k < d * d; k++)
    if (!Number.isFinite(sigma[k])) return `has a non-finite value (${sigma[k]}) at [${Math.floor(k / d)}, ${k % d}]`;
  const asym = asymmetry(sigma, d);
  if (asym) return asym;
  const tol = negativityTolerance(sigma, d);
  const shifted = symmetrized(sigma, d);
  for (let i = 0; i < d; i++) shifted[i * d + i] += tol;
  if (pivotedCholesky(shifted, d, { tol: 0 }).rank === d) return undefined;
  const smallest = symmetricEigenvalues(symmetrized(sigma, d), d)[0];
  if (smallest >= -tol) return undefined;
  return `is not positive semi-definite: its smallest eigenvalue is ${g(smallest)}, below ${g(-tol)} (-1e-6·Σᵢ|Σᵢᵢ|)`;
}

/**
 * Symmetric working copy of a covariance; refuses one that is far from symmetric, or has a
 * diagonal entry below the PSD tolerance (a cheap, partial PSD test: Σᵢᵢ ≥ λmin).
 */
function covariance(name: string, sigma: ArrayLike<number>, d: number): Float64Array {
  const s = toFloat64(name, sigma, d * d);
  const asym = asymmetry(s, d);
  if (asym) throw new RangeError(`${name} ${asym}`);
  const tol = negativityTolerance(s, d);
  for (let i = 0; i < d; i++)
    if (s[i * d + i] < -tol)
      throw new RangeError(
        `${name} is not positive semi-definite: its diagonal entry [${i}, ${i}] is ${g(s[i * d + i])}`,
      );
  return symmetrized(s, d);
}

/** The squared Fréchet distance and its terms. sigma1, sigma2: row-major d×d. */
export function frechetDistanceParts(
  mu1: ArrayLike<number>,
  sigma1: ArrayLike<number>,
  mu2: ArrayLike<number>,
  sigma2: ArrayLike<number>,
  options: FrechetOptions = {},
): FrechetParts {
  const d = dimensionOf(mu1, sigma1, mu2, sigma2);
  const offset = options.offset ?? 0;
  if (!Number.isFinite(offset) || offset < 0) throw new RangeError(`offset must be finite and ≥ 0, got ${offset}`);
  const m1 = toFloat64('mu1', mu1, d);
  const m2 = toFloat64('mu2', mu2, d);
  const s1 = covariance('sigma1', sigma1, d);
  const s2 = covariance('sigma2', sigma2, d);

  let meanTerm = 0;
  let trace1 = 0;
  let trace2 = 0;
  for (let i = 0; i < d; i++) {
    const diff = m1[i] - m2[i];
    meanTerm += diff * diff;
    trace1 += s1[i * d + i];
    trace2 += s2[i * d + i];
  }
  if (offset !== 0) {
    for (let i = 0; i < d; i++) {
      s1[i * d + i] += offset;
      s2[i * d + i] += offset;
    }
  }

  const method = options.method ?? 'cholesky';
  let ft: Float64Array; // Fᵀ, r×d
  let s2f: Float64Array; // Σ2 in F's row coordinates
  let rowStart: Int32Array | undefined;
  let r: number;
  if (method === 'cholesky') {
    // Pivoted Cholesky: Σ1[perm[i], perm[j]] = (L·Lᵀ)[i, j]. Work in the permuted coordinates,
    // where Lᵀ's row p starts at column p.
    const chol = pivotedCholesky(s1, d);
    r = chol.rank;
    ft = chol.lt;
    rowStart = Int32Array.from({ length: r }, (_, p) => p);
    s2f = new Float64Array(d * d);
    const perm = chol.perm;
    for (let i = 0; i < d; i++) {
      const src = perm[i] * d;
      for (let j = 0; j < d; j++) s2f[i * d + j] = s2[src + perm[j]];
    }
  } else if (method === 'eigh') {
    const { values, vectorsT } = symmetricEigen(s1, d);
    // Eigenvalues below d·ε·λmax are rounding noise of a singular Σ1 (the same cut as the
    // Cholesky pivots'): their directions are left out of the factor.
    const cut = d * 2 ** -52 * Math.max(0, values[d - 1]);
    const kept: number[] = [];
    for (let j = 0; j < d; j++) if (values[j] > cut) kept.push(j);
    r = kept.length;
    ft = new Float64Array(r * d);
    kept.forEach((j, row) => {
      const s = Math.sqrt(values[j]);
      for (let q = 0; q < d; q++) ft[row * d + q] = vectorsT[j * d + q] * s;
    });
    s2f = s2;
  } else {
    throw new RangeError(`unknown method '${String(method)}': use 'cholesky' or 'eigh'`);
  }

  let traceSqrt = 0;
  let clipped = 0;
  if (r > 0) {
    // M = Fᵀ·Σ2·F: first (Fᵀ·Σ2) (r×d, Σ2 symmetric so its rows serve as columns), then M.
    const tt = gemmNT(ft, s2f, r, d, d, { rowStart });
    const m = gemmNT(ft, tt, r, r, d, { symmetric: true, rowStart });
    const eig = symmetricEigenvalues(m, r);
    for (let i = 0; i < r; i++) {
      if (eig[i] > 0) traceSqrt += Math.sqrt(eig[i]);
      else clipped -= eig[i];
    }
  }
  return {
    distance: meanTerm + trace1 + trace2 - 2 * traceSqrt,
    meanTerm,
    trace1,
    trace2,
    traceSqrt,
    rank1: r,
    clipped,
  };
}

/**
 * The squared Fréchet distance ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2·tr √(Σ1^½ Σ2 Σ1^½) in float64
 * (pytorch-fid's `calculate_frechet_distance`). sigma1, sigma2: row-major d×d covariances.
 */
export function frechetDistance(
  mu1: ArrayLike<number>,
  sigma1: ArrayLike<number>,
  mu2: ArrayLike<number>,
  sigma2: ArrayLike<number>,
  options: FrechetOptions = {},
): number {
  return frechetDistanceParts(mu1, sigma1, mu2, sigma2, options).distance;
}
