import { gemmNTStrided } from './linalg.js';

/** A batch of feature rows: one flat row-major array (rows × dim), or one array per row. */
export type FeatureBatch = Float32Array | Float64Array | ReadonlyArray<ArrayLike<number>>;

/** Rows folded into the statistics at a time (one centred block product per chunk). */
const CHUNK = 256;

/**
 * Streaming mean and covariance of feature vectors in float64, the statistics FID compares.
 *
 * Batches are folded in chunks: each chunk's own mean and centred scatter matrix Σ(x − x̄)(x − x̄)ᵀ
 * (one block product), then combined with the running totals by Chan, Golub & LeVeque's parallel
 * update — M2 = M2_a + M2_b + δ·δᵀ·n_a·n_b/n, δ = x̄_b − x̄_a — which is also how `merge` combines
 * two accumulators (e.g. from separate workers). Working on centred data keeps the result as
 * accurate as numpy's two-pass `np.cov`, however large the features' means.
 */
export class FeatureStats {
  readonly dim: number;
  private n = 0;
  private mu: Float64Array;
  /** Σ (x − mean)(x − mean)ᵀ; only the lower triangle (i ≥ j) is kept up to date. */
  private m2: Float64Array;

  constructor(dim: number) {
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`dim must be a positive integer, got ${dim}`);
    this.dim = dim;
    this.mu = new Float64Array(dim);
    this.m2 = new Float64Array(dim * dim);
  }

  /** The number of feature vectors seen. */
  get count(): number {
    return this.n;
  }

  /** Adds a batch of feature vectors (a flat rows × dim array, or an array of rows). */
  add(batch: FeatureBatch): this {
    const d = this.dim;
    let rows: number;
    let row: (r: number, out: Float64Array, at: number) => void;
    if (ArrayBuffer.isView(batch)) {
      const flat = batch as Float32Array | Float64Array;
      if (flat.length % d !== 0)
        throw new RangeError(`a flat batch must hold whole rows of ${d} values, got ${flat.length}`);
      rows = flat.length / d;
      row = (r, out, at) => {
        for (let i = 0; i < d; i++) out[at + i] = flat[r * d + i];
      };
    } else {
      const list = batch as ReadonlyArray<ArrayLike<number>>;
      rows = list.length;
      list.forEach((x, r) => {
        if (x.length !== d) throw new RangeError(`row ${r} has ${x.length} values, expected ${d}`);
      });
      row = (r, out, at) => {
        const x = list[r];
        for (let i = 0; i < d; i++) out[at + i] = x[i];
      };
    }
    const chunk = new Float64Array(Math.min(rows, CHUNK) * d);
    for (let r0 = 0; r0 < rows; r0 += CHUNK) {
      const m = Math.min(CHUNK, rows - r0);
      for (let r = 0; r < m; r++) row(r0 + r, chunk, r * d);
      for (let i = 0; i < m * d; i++)
        if (!Number.isFinite(chunk[i]))
          throw new RangeError(`feature row ${r0 + Math.floor(i / d)} has a non-finite value (${chunk[i]})`);
      this.addChunk(chunk, m);
    }
    return this;
  }

  /** Folds m rows (row-major in `x`, overwritten) into the totals. */
  private addChunk(x: Float64Array, m: number): void {
    const d = this.dim;
    const mean = new Float64Array(d);
    for (let r = 0; r < m; r++) for (let i = 0; i < d; i++) mean[i] += x[r * d + i];
    for (let i = 0; i < d; i++) mean[i] /= m;
    // Centred, transposed (d × m): the scatter matrix is then xt·xtᵀ, rows against rows.
    const xt = new Float64Array(d * m);
    for (let r = 0; r < m; r++) for (let i = 0; i < d; i++) xt[i * m + r] = x[r * d + i] - mean[i];
    gemmNTStrided(1, xt, 0, m, xt, 0, m, this.m2, 0, d, d, d, m, true);
    this.combine(m, mean);
  }

  /**
   * Moves the running mean to include nB samples of mean `meanB` and adds the δ·δᵀ·nA·nB/n term;
   * the caller has already added the other part's own scatter matrix.
   */
  private combine(nB: number, meanB: Float64Array): void {
    const d = this.dim;
    const nA = this.n;
    const n = nA + nB;
    const delta = new Float64Array(d);
    for (let i = 0; i < d; i++) delta[i] = meanB[i] - this.mu[i];
    if (nA > 0) {
      const w = (nA * nB) / n;
      for (let i = 0; i < d; i++) {
        const di = delta[i] * w;
        const row = i * d;
        for (let j = 0; j <= i; j++) this.m2[row + j] += di * delta[j];
      }
    }
    const f = nB / n;
    for (let i = 0; i < d; i++) this.mu[i] += delta[i] * f;
    this.n = n;
  }

  /** Adds another accumulator's samples (Chan's parallel update); `other` is unchanged. */
  merge(other: FeatureStats): this {
    if (other.dim !== this.dim)
      throw new RangeError(`cannot merge statistics of dimension ${other.dim} into ${this.dim}`);
    if (other.n === 0) return this;
    const d = this.dim;
    for (let i = 0; i < d; i++) {
      const row = i * d;
      for (let j = 0; j <= i; j++) this.m2[row + j] += other.m2[row + j];
    }
    this.combine(other.n, other.mu);
    return this;
  }

  /** The mean of the features seen (float64, length dim). */
  mean(): Float64Array {
    if (this.n === 0) throw new RangeError('the mean of no samples is undefined');
    return Float64Array.from(this.mu);
  }

  /**
   * The unbiased sample covariance Σ(x − x̄)(x − x̄)ᵀ / (n − 1) (numpy.cov's default, which
   * pytorch-fid uses), row-major dim × dim.
   */
  covariance(): Float64Array {
    if (this.n < 2) throw new RangeError(`the sample covariance needs at least 2 samples, got ${this.n}`);
    const d = this.dim;
    const out = new Float64Array(d * d);
    const s = 1 / (this.n - 1);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j <= i; j++) {
        const v = this.m2[i * d + j] * s;
        out[i * d + j] = v;
        out[j * d + i] = v;
      }
    }
    return out;
  }

  /** `{ mu, sigma }` as pytorch-fid's statistics files hold them. */
  fidStats(): { mu: Float64Array; sigma: Float64Array } {
    return { mu: this.mean(), sigma: this.covariance() };
  }

  /**
   * The accumulator's whole state: the count, the mean and the centred scatter matrix
   * Σ(x − x̄)(x − x̄)ᵀ (full, symmetric), in float64. A sharded evaluation writes one per worker
   * and merges them with `fromParts` + `merge`; centred sums, not Σx and Σxxᵀ, so that merging
   * loses no digits however large the features' means (the same reason `add` centres).
   */
  parts(): { count: number; mean: Float64Array; scatter: Float64Array } {
    const d = this.dim;
    const scatter = new Float64Array(d * d);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j <= i; j++) {
        scatter[i * d + j] = this.m2[i * d + j];
        scatter[j * d + i] = this.m2[i * d + j];
      }
    }
    return { count: this.n, mean: Float64Array.from(this.mu), scatter };
  }

  /** An accumulator holding `parts` (as `parts()` returns them), to merge with others. */
  static fromParts(parts: { count: number; mean: ArrayLike<number>; scatter: ArrayLike<number> }): FeatureStats {
    const d = parts.mean.length;
    if (parts.scatter.length !== d * d)
      throw new RangeError(`scatter has ${parts.scatter.length} values, expected ${d}×${d} for a mean of length ${d}`);
    if (!Number.isInteger(parts.count) || parts.count < 0)
      throw new RangeError(`count must be a non-negative integer, got ${parts.count}`);
    const stats = new FeatureStats(d);
    stats.n = parts.count;
    stats.mu.set(parts.mean);
    stats.m2.set(parts.scatter);
    return stats;
  }

  /** An independent copy. */
  clone(): FeatureStats {
    const c = new FeatureStats(this.dim);
    c.n = this.n;
    c.mu.set(this.mu);
    c.m2.set(this.m2);
    return c;
  }
}
