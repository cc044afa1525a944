import { gridTimeOf } from '@matryoshka-ts/schedules';
import type { LossTarget } from './types.js';

/**
 * Min-SNR-γ loss weights (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting
 * Strategy", ICCV 2023), float64, one per training index in `times`.
 *
 * The three targets are the same error seen at different scales:
 * ‖ε̂ − ε‖² = SNR·‖x̂0 − x0‖² and ‖v̂ − v‖² = (SNR + 1)·‖x̂0 − x0‖², SNR = γ/(1 − γ). Min-SNR
 * weights the x0 error by min(SNR, γ_max), so that nearly clean samples, whose x0 error is tiny
 * but which the network can always improve, stop pulling the shared weights away from the noisy
 * ones. For the loss's own target that is
 *
 *   eps: min(SNR, γ_max)/SNR,   v: min(SNR, γ_max)/(SNR + 1),   x0: min(SNR, γ_max).
 *
 * `gammas` is one level's table (`gammas[0] = 1`); training index t noises with
 * `gammas[t + 1]` (`gridTimeOf`), so its SNR is read there. A nested model's levels have
 * shifted schedules, hence different SNRs at the same t: pass each level its own table.
 */
export function minSnrWeights(
  gammas: ArrayLike<number>,
  times: readonly number[],
  gammaMax: number,
  target: LossTarget,
): number[] {
  if (!(gammaMax > 0 && Number.isFinite(gammaMax)))
    throw new RangeError(`min-SNR γ must be a positive number, got ${gammaMax}`);
  const steps = gammas.length - 1;
  return times.map((t) => {
    if (!(Number.isInteger(t) && t >= 0 && t < steps))
      throw new RangeError(`training index ${t} outside 0…${steps - 1}`);
    const g = gammas[gridTimeOf(t)];
    const snr = g / (1 - g);
    const clipped = Math.min(snr, gammaMax);
    // Written without 0/0 where ᾱ underflows to 0 at the noisy end (the weight's limit there is 1).
    if (target === 'eps') return snr <= gammaMax ? 1 : gammaMax / snr;
    if (target === 'v') return clipped / (snr + 1);
    return clipped;
  });
}
