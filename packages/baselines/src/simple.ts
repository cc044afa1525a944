/**
 * The paper's simple-DM baselines (§4.1): a single-level UNet is a NestedUNet without `inner`
 * (its schedule shifted with `-shiftN` or simple diffusion's `-resD`, `-resD-interpL-H`), and the
 * second variant is a NestedUNet trained with the top level's loss only.
 */

/** Per-level loss weights [1, 0, …]: the second simple-DM variant, a NestedUNet trained on its top level only. */
export function topLevelLossWeights(levels: number): number[] {
  if (!Number.isInteger(levels) || levels < 1) throw new RangeError(`topLevelLossWeights: ${levels} levels`);
  return Array.from({ length: levels }, (_, i) => (i === 0 ? 1 : 0));
}
