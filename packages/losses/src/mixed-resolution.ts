import * as tf from '@tensorflow/tfjs-core';

/** A ratio a:b:… as numbers (one per level, level 0 first), from `'2:1'` or `[2, 1]`. */
export function parseMixedRatio(ratio: string | readonly number[]): number[] {
  const parts =
    typeof ratio === 'string' ? ratio.split(':').map((p) => (p.trim() === '' ? Number.NaN : Number(p))) : [...ratio];
  if (parts.length === 0 || parts.some((p) => !(Number.isFinite(p) && p >= 0)) || !parts.some((p) => p > 0)) {
    throw new Error(`mixed ratio '${String(ratio)}' must be non-negative numbers, not all zero (e.g. '2:1')`);
  }
  return parts;
}

/** The cumulative fractions m_N = (a, a+b, …)/sum of a ratio a:b:… (level 0 first; the last is 1). */
export function mixedFractions(ratio: string | readonly number[]): number[] {
  const parts = parseMixedRatio(ratio);
  const sum = parts.reduce((s, p) => s + p, 0);
  let acc = 0;
  return parts.map((p) => {
    acc += p;
    return acc / sum;
  });
}

/**
 * How many samples each level sees in a mixed-resolution batch of `batch`: ⌊m_N·B⌋, level N
 * taking the first ones. Evaluated as ⌊(a+…)·B / sum⌋ so that integer ratios are exact
 * (2:1, B=3 → [2, 3]; 1:1:1, B=6 → [2, 4, 6]).
 */
export function samplesPerLevel(ratio: string | readonly number[], batch: number): number[] {
  if (!(Number.isInteger(batch) && batch >= 0)) throw new Error(`batch must be a non-negative integer, got ${batch}`);
  const parts = parseMixedRatio(ratio);
  const sum = parts.reduce((s, p) => s + p, 0);
  let acc = 0;
  return parts.map((p, n) => {
    acc += p;
    return n === parts.length - 1 ? batch : Math.floor((acc * batch) / sum);
  });
}

/**
 * The first `counts[N]` samples of each level's tensor (batch axis 0), e.g. the network inputs of a mixed-resolution
 * batch.
 */
export function firstSamples<T extends tf.Tensor>(tensors: readonly T[], counts: readonly number[]): T[] {
  if (counts.length !== tensors.length)
    throw new Error(`firstSamples: ${counts.length} counts for ${tensors.length} levels`);
  return tf.tidy(() =>
    tensors.map((t, n) => {
      if (!(Number.isInteger(counts[n]) && counts[n] >= 0 && counts[n] <= t.shape[0])) {
        throw new Error(`level ${n}: cannot take ${counts[n]} of ${t.shape[0]} samples`);
      }
      return (counts[n] === t.shape[0] ? tf.clone(t) : tf.slice(t, 0, counts[n])) as T;
    }),
  );
}
