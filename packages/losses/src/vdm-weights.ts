/**
 * VDM-style per-sample loss weights (the official `use_vdm_loss_weights`), float64:
 * w_t = SNR(t−1)/SNR(t) − 1 for the diffusion step the training index t stands for, written
 * with the table ᾱ (`gammas`, `gammas[0] = 1`) as
 *
 *   w = g_last·(1 − g) / ((1 − g_last)·g) − 1,   g = gammas[t + 1],  g_last = gammas[t].
 *
 * At t = 0, g_last = gammas[0] = 1 makes the weight infinite; the official code's lookup table
 * `cat([w[:1], w[:1], w])` (w listing the finite weights from the second step on) indexed at
 * t + 1 gives t = 0 the weight of t = 1, and so do we.
 *
 * In a nested model every level has its own table but a sample has one weight. The choice does
 * not matter in exact arithmetic: a level's shift divides SNR(t−1) and SNR(t) by the same s^p, so
 * their ratio is that of the unshifted schedule. We use level 0's table (the highest resolution,
 * the one a plain model of the same size would use); float32 tables differ only by rounding.
 */
export function vdmLossWeights(gammas: ArrayLike<number>, times: readonly number[]): number[] {
  const steps = gammas.length - 1;
  if (steps < 2) throw new Error(`vdmLossWeights: the table needs at least 3 entries, got ${gammas.length}`);
  const weight = (t: number) => {
    const g = gammas[t + 1];
    const gLast = gammas[t];
    return (gLast * (1 - g)) / ((1 - gLast) * g) - 1;
  };
  return times.map((t) => {
    if (!(Number.isInteger(t) && t >= 0 && t < steps))
      throw new RangeError(`training index ${t} outside 0…${steps - 1}`);
    return weight(Math.max(t, 1));
  });
}
