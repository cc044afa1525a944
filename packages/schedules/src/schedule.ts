/**
 * A noise schedule in both of the project's time conventions:
 * - discrete (the official code's): `gammas[k]` = ᾱ after k of `steps` diffusion steps,
 *   `gammas[0] = 1`; training draws t ∈ {0 … steps−1}, uses `gammas[t + 1]` and feeds the
 *   network t; sampling from t to s uses `gammas[t]`, `gammas[s]` and feeds t − 1;
 * - continuous: ᾱ(t) for t ∈ [0, 1].
 * ᾱ is the signal variance α², so x_t = √ᾱ·x0 + √(1−ᾱ)·ε and SNR = ᾱ/(1−ᾱ).
 */
export interface Schedule {
  /** Name as in the paper's configs: `cosine`, `cosine-shift4`, `linear`, … */
  readonly name: string;
  /** Number of discrete diffusion steps (1000 in every config). */
  readonly steps: number;
  /** ᾱ table with `steps + 1` entries, float64. */
  readonly gammas: Float64Array;
  /** The same table as the official code holds it (float32; shifts evaluated in float32). */
  readonly gammasF32: Float32Array;
  /** ᾱ(t) for continuous t ∈ [0, 1]. */
  gamma(t: number): number;
  /** log SNR(t) = log(ᾱ/(1−ᾱ)) for continuous t ∈ [0, 1]. */
  logSnr(t: number): number;
}

/** log SNR of a signal variance ᾱ. */
export function logSnrOf(gamma: number): number {
  return Math.log(gamma) - Math.log1p(-gamma);
}

/** Signal variance ᾱ of a log SNR: sigmoid(λ). */
export function gammaOfLogSnr(logSnr: number): number {
  return logSnr >= 0 ? 1 / (1 + Math.exp(-logSnr)) : Math.exp(logSnr) / (1 + Math.exp(logSnr));
}

/** Builds a `Schedule` from a float64 table and a continuous ᾱ(t). */
export function makeSchedule(
  name: string,
  gammas: Float64Array,
  gamma: (t: number) => number,
  gammasF32?: Float32Array,
): Schedule {
  return {
    name,
    steps: gammas.length - 1,
    gammas,
    gammasF32: gammasF32 ?? Float32Array.from(gammas),
    gamma: (t) => gamma(checkT(t)),
    logSnr: (t) => logSnrOf(gamma(checkT(t))),
  };
}

function checkT(t: number): number {
  if (!(t >= 0 && t <= 1)) throw new RangeError(`continuous time must lie in [0, 1], got ${t}`);
  return t;
}

/** ᾱ table from per-step β (β_0 = 0 prepended): gammas[k] = exp(Σ_{j≤k} log(1 − β_j)). */
export function gammasFromBetas(betas: ArrayLike<number>): Float64Array {
  const out = new Float64Array(betas.length + 1);
  out[0] = 1;
  let acc = 0; // log(1 − β_0) = log 1
  for (let i = 0; i < betas.length; i++) {
    acc += Math.log(1 - betas[i]);
    out[i + 1] = Math.exp(acc);
  }
  return out;
}
