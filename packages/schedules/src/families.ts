import { type Schedule, gammaOfLogSnr, gammasFromBetas, makeSchedule } from './schedule.js';

const HALF_PI = Math.PI / 2;

/** iDDPM's ᾱ(τ) = cos²(((τ + 0.008)/1.008)·π/2) before normalisation. */
function cosineAlphaBar(t: number): number {
  return Math.cos(((t + 0.008) / 1.008) * HALF_PI) ** 2;
}

/**
 * The squared-cosine schedule with β capped at 0.999 (iDDPM / diffusers `squaredcos_cap_v2`, the
 * official code's `DEEPFLOYD`, the paper's `cosine`): β_i = min(1 − ᾱ(i/N)/ᾱ((i−1)/N), 0.999).
 * Continuous ᾱ(t) = ᾱ(t)/ᾱ(0), floored where the cap would bite.
 */
export function squaredCosineSchedule(steps = 1000): Schedule {
  const betas = new Float64Array(steps);
  for (let i = 0; i < steps; i++)
    betas[i] = Math.min(1 - cosineAlphaBar((i + 1) / steps) / cosineAlphaBar(i / steps), 0.999);
  const a0 = cosineAlphaBar(0);
  return makeSchedule('cosine', gammasFromBetas(betas), (t) => Math.max(cosineAlphaBar(t) / a0, 1e-12));
}

/**
 * The log-SNR-truncated cosine (Salimans & Ho; the official code's `COSINE`):
 * log SNR(τ) = −2·ln tan(a·τ + b), with b = atan(e^{−λmax/2}), a = atan(e^{−λmin/2}) − b, so
 * log SNR runs from λmax at τ = 0 to λmin at τ = 1. The table samples τ = linspace(0, 1, N).
 */
export function logSnrCosineSchedule(steps = 1000, logSnrMin = -5, logSnrMax = 5): Schedule {
  const b = Math.atan(Math.exp(-0.5 * logSnrMax));
  const a = Math.atan(Math.exp(-0.5 * logSnrMin)) - b;
  const gamma = (t: number) => gammaOfLogSnr(-2 * Math.log(Math.tan(a * t + b)));
  const gammas = new Float64Array(steps + 1);
  gammas[0] = 1;
  // numpy.linspace(0, 1, N): i·step, with the last point exactly 1.
  const step = steps === 1 ? 0 : 1 / (steps - 1);
  for (let i = 0; i < steps; i++) gammas[i + 1] = gamma(i === steps - 1 ? 1 : i * step);
  return makeSchedule('cosine-logsnr', gammas, gamma);
}

/**
 * The linear-β schedule of DDPM (Ho et al.): β from `betaStart` to `betaEnd` over N steps.
 * Continuous ᾱ(t) = exp(−N·(β0·t + (β1 − β0)·t²/2)), the integral of the same line.
 */
export function linearSchedule(steps = 1000, betaStart = 1e-4, betaEnd = 0.02): Schedule {
  const betas = new Float64Array(steps);
  for (let i = 0; i < steps; i++)
    betas[i] = steps === 1 ? betaStart : betaStart + ((betaEnd - betaStart) * i) / (steps - 1);
  return makeSchedule('linear', gammasFromBetas(betas), (t) =>
    Math.exp(-steps * (betaStart * t + ((betaEnd - betaStart) * t * t) / 2)),
  );
}
