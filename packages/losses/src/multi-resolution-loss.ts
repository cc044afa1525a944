import * as tf from '@tensorflow/tfjs-core';
import type { PredictionType } from '@matryoshka-ts/core';
import type { NoisyLevels } from './forward-process.js';
import { mixedFractions, samplesPerLevel } from './mixed-resolution.js';
import { lossTarget, predictedTarget } from './parameterization.js';
import type { LossTarget } from './types.js';

/** Settings of the multi-resolution loss (paper §3.3, Eq. 3). */
export interface MultiResolutionLossOptions {
  /** What the network outputs (`v` in the official configs). */
  prediction: PredictionType;
  /** What the loss compares against (`eps` in the official configs). */
  target: LossTarget;
  /**
   * w_N per level, level 0 first (default all 1). The paper's ω_r ∝ N_R/N_r multiplies the
   * *summed* squared error of a level with N_r pixels; as sum = N_r·mean, that is N_R·mean at
   * every level, i.e. equal weights on the per-level means used here (up to the constant N_R).
   */
  weights?: readonly number[];
  /** Mixed-resolution ratio a:b:… (level 0 first): level N sees only the first ⌊m_N·B⌋ samples. */
  mixedRatio?: string | readonly number[];
  /**
   * Per-sample weights w: the batch loss becomes Σ w·l / Σ w instead of the mean. For the VDM
   * weighting pass `vdmLossWeights(schedules[0].gammasF32, times)` (level 0's table; every level's table gives
   * the same weights up to rounding, see `vdmLossWeights`).
   */
  sampleWeights?: readonly number[];
  /**
   * Per-level, per-sample weights w_N,b multiplying level N's error of sample b before the plain
   * batch mean (level 0 first; each list holds the level's b_N samples): Min-SNR-γ weighting
   * (`minSnrWeights` of each level's own table), where a level's SNR at t depends on its shift.
   */
  levelSampleWeights?: readonly (readonly number[])[];
}

/**
 * The loss of one training batch; the caller disposes it (`tf.dispose(result)`), or takes `loss` inside a gradient
 * scope.
 */
export type MultiResolutionLoss = {
  /** The batch loss: the mean over the B samples of `perSample` (Σ w·l / Σ w with sample weights); scalar. */
  loss: tf.Scalar;
  /**
   * Per-sample total Σ_N w_N·mse_N, [B] (each mse_N times its per-level sample weight where given); in mixed
   * batches w_N·mse_N/m_N where level N sees the sample, 0 where not.
   */
  perSample: tf.Tensor1D;
  /** Per level, for the b_N samples the level sees: the mean over H, W, C of (prediction − target)², [b_N]. */
  mse: tf.Tensor1D[];
};

/** Per-sample mean over H, W, C of (a − b)² for NHWC images: [B]. */
export function levelMse(a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor1D {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(a, b)), [1, 2, 3]) as tf.Tensor1D);
}

/**
 * The multi-resolution loss L = Σ_N w_N·‖target_N(prediction_N) − target_N‖² / (C·H_N·W_N) per
 * sample, averaged over the batch. `outputs[N]` is the network output at level N (NHWC, level 0
 * first) for the samples that level sees: all B, or in a mixed batch its first ⌊m_N·B⌋;
 * `levels` holds x0, ε, γ and x_t of the full batch at every level.
 */
export function multiResolutionLoss(
  outputs: readonly tf.Tensor4D[],
  levels: NoisyLevels,
  options: MultiResolutionLossOptions,
): MultiResolutionLoss {
  const count = levels.x0.length;
  const batch = levels.x0[0].shape[0];
  const weights = options.weights ?? new Array<number>(count).fill(1);
  const fractions =
    options.mixedRatio === undefined ? new Array<number>(count).fill(1) : mixedFractions(options.mixedRatio);
  const seen =
    options.mixedRatio === undefined
      ? new Array<number>(count).fill(batch)
      : samplesPerLevel(options.mixedRatio, batch);
  checkLevels(outputs, levels, weights, fractions, seen, options.sampleWeights, options.levelSampleWeights);

  return tf.tidy(() => {
    const mse = outputs.map((output, n) => {
      const [xt, x0, eps] = [levels.xt[n], levels.x0[n], levels.eps[n]].map((t) => firstOf(t, seen[n]));
      const gamma = firstOf(levels.gamma[n], seen[n]);
      return levelMse(
        predictedTarget(output, xt, gamma, options.prediction, options.target),
        lossTarget(options.target, x0, eps, gamma),
      );
    });
    // Σ_N w_N·mse_N/m_N, where a level contributes 0 for the samples it does not see.
    const terms = mse.map((m, n) => {
      const perLevel = options.levelSampleWeights;
      const weighted = perLevel ? tf.mul(m, tf.tensor1d(perLevel[n] as number[], 'float32')) : m;
      return tf.mul(tf.pad(weighted, [[0, batch - seen[n]]]), weights[n] / fractions[n]);
    });
    const perSample = (terms.length === 1 ? terms[0] : tf.addN(terms)) as tf.Tensor1D;
    const loss = options.sampleWeights ? weightedMean(perSample, options.sampleWeights) : tf.mean(perSample);
    return { loss: loss as tf.Scalar, perSample, mse };
  });
}

/** Σ w·l / Σ w over the batch. */
function weightedMean(perSample: tf.Tensor1D, sampleWeights: readonly number[]): tf.Scalar {
  const w = tf.tensor1d(sampleWeights as number[], 'float32');
  return tf.div(tf.sum(tf.mul(w, perSample)), tf.sum(w));
}

function firstOf<T extends tf.Tensor>(t: T, b: number): T {
  return (t.shape[0] === b ? t : tf.slice(t, 0, b)) as T;
}

function checkLevels(
  outputs: readonly tf.Tensor4D[],
  levels: NoisyLevels,
  weights: readonly number[],
  fractions: readonly number[],
  seen: readonly number[],
  sampleWeights: readonly number[] | undefined,
  levelSampleWeights: readonly (readonly number[])[] | undefined,
): void {
  const count = levels.x0.length;
  const batch = levels.x0[0].shape[0];
  if (count === 0) throw new Error('multiResolutionLoss: no levels');
  if (outputs.length !== count) throw new Error(`multiResolutionLoss: ${outputs.length} outputs for ${count} levels`);
  if (weights.length !== count)
    throw new Error(`multiResolutionLoss: ${weights.length} level weights for ${count} levels`);
  if (fractions.length !== count)
    throw new Error(`multiResolutionLoss: the mixed ratio has ${fractions.length} parts for ${count} levels`);
  if (sampleWeights && sampleWeights.length !== batch)
    throw new Error(`multiResolutionLoss: ${sampleWeights.length} sample weights for ${batch} samples`);
  if (levelSampleWeights) {
    if (levelSampleWeights.length !== count)
      throw new Error(
        `multiResolutionLoss: per-level sample weights for ${levelSampleWeights.length} levels, not ${count}`,
      );
    levelSampleWeights.forEach((w, n) => {
      if (w.length !== seen[n])
        throw new Error(`level ${n}: ${w.length} sample weights for the ${seen[n]} samples it sees`);
    });
  }
  outputs.forEach((output, n) => {
    const full = levels.x0[n].shape;
    if (
      full[0] !== batch ||
      levels.xt[n].shape[0] !== batch ||
      levels.eps[n].shape[0] !== batch ||
      levels.gamma[n].shape[0] !== batch
    ) {
      throw new Error(`level ${n}: x0, ε, x_t and γ must hold the full batch of ${batch}`);
    }
    const want = [seen[n], ...full.slice(1)];
    if (output.shape.join() !== want.join()) {
      throw new Error(
        `level ${n}: output has shape [${output.shape}], expected [${want}] (the ${seen[n]} samples this level sees)`,
      );
    }
  });
}
