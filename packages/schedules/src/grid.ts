/** Rounds half to even, as numpy's `round` does (500.5 → 500). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The K-step sampling grid of the official code: round(k·(N+1)/(K+1)) for k = 0…K, decreasing.
 * It starts at ≈ N·K/(K+1), not N, and ends at 0 (K = 5, N = 1000: 834, 667, 500, 334, 167, 0).
 * A sampler steps from grid[i] to grid[i + 1].
 */
export function samplingGrid(numSteps: number, diffusionSteps = 1000): number[] {
  if (!Number.isInteger(numSteps) || numSteps < 1)
    throw new RangeError(`numSteps must be a positive integer, got ${numSteps}`);
  if (numSteps > diffusionSteps)
    throw new RangeError(`numSteps (${numSteps}) exceeds the schedule's ${diffusionSteps} steps`);
  const ratio = (diffusionSteps + 1) / (numSteps + 1);
  const grid: number[] = [];
  for (let k = numSteps; k >= 0; k--) grid.push(roundHalfEven(k * ratio));
  return grid;
}

/** Every step from N down to 0 (ancestral sampling without resampling the grid). */
export function fullGrid(diffusionSteps = 1000): number[] {
  return Array.from({ length: diffusionSteps + 1 }, (_, i) => diffusionSteps - i);
}
