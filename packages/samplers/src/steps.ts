import * as tf from '@tensorflow/tfjs-core';
import type { PredictionType } from '@matryoshka-ts/core';
import type { Schedule } from '@matryoshka-ts/schedules';

// Notation (the official code's): γ = ᾱ, the signal variance, so x_t = √γ_t·x0 + √(1−γ_t)·ε.
// A step goes from grid time t down to s < t; γ_t = table[t], γ_s = table[s].

/** Signal variances of one level at the two ends of a step t → s (γ_t < γ_s ≤ 1). */
export interface StepGammas {
  gammaT: number;
  gammaS: number;
}

/** γ_t and γ_s of one level, read from its float32 table (the values the official sampler uses). */
export function stepGammas(schedule: Schedule, t: number, s: number): StepGammas {
  const table = schedule.gammasF32;
  for (const [name, k] of [
    ['t', t],
    ['s', s],
  ] as const) {
    if (!Number.isInteger(k) || k < 0 || k >= table.length) {
      throw new RangeError(
        `grid time ${name} = ${k} is not an integer index into ${schedule.name}'s table of ${table.length} entries`,
      );
    }
  }
  if (!(s < t)) throw new RangeError(`a step goes down in time, got t = ${t} → s = ${s}`);
  return { gammaT: table[t], gammaS: table[s] };
}

/** x̂0 [B, H, W, C] from a network prediction of the given type at signal variance γ_t. */
export function predictX0(prediction: tf.Tensor4D, xT: tf.Tensor4D, gammaT: number, type: PredictionType): tf.Tensor4D {
  const sqrtGamma = Math.sqrt(gammaT);
  const sqrtOneMinusGamma = Math.sqrt(1 - gammaT);
  return tf.tidy(() => {
    switch (type) {
      case 'x0':
        return tf.clone(prediction);
      case 'eps': // x̂0 = (x_t − √(1−γ_t)·ε̂)/√γ_t
        return tf.div(tf.sub(xT, tf.mul(sqrtOneMinusGamma, prediction)), sqrtGamma) as tf.Tensor4D;
      case 'v': // x̂0 = √γ_t·x_t − √(1−γ_t)·v̂
        return tf.sub(tf.mul(sqrtGamma, xT), tf.mul(sqrtOneMinusGamma, prediction)) as tf.Tensor4D;
      default:
        throw new Error(`Unknown prediction type '${type as string}': expected eps, x0 or v`);
    }
  });
}

/** ε̂ = (x_t − √γ_t·x̂0)/√(1−γ_t), the noise implied by x̂0 (NHWC). */
export function epsFromX0(xT: tf.Tensor4D, x0: tf.Tensor4D, gammaT: number): tf.Tensor4D {
  return tf.tidy(() => tf.div(tf.sub(xT, tf.mul(Math.sqrt(gammaT), x0)), Math.sqrt(1 - gammaT)) as tf.Tensor4D);
}

/** β̃ = β·(1−γ_s)/(1−γ_t) with α = γ_t/γ_s, β = 1 − α: the variance of the posterior q(x_s | x_t, x0). */
export function posteriorVariance({ gammaT, gammaS }: StepGammas): number {
  const alpha = gammaT / gammaS;
  const beta = 1 - alpha;
  return (beta * (1 - gammaS)) / (1 - gammaT);
}

/**
 * DDPM (posterior) step, NHWC: α = γ_t/γ_s, β = 1 − α, β̃ = β·(1−γ_s)/(1−γ_t),
 * x_s = x̂0·β·√γ_s/(1−γ_t) + x_t·√α·(1−γ_s)/(1−γ_t) + √β̃·z. Without z, the posterior mean.
 */
export function ddpmStep(x0: tf.Tensor4D, xT: tf.Tensor4D, gammas: StepGammas, z?: tf.Tensor4D): tf.Tensor4D {
  const { gammaT, gammaS } = gammas;
  const alpha = gammaT / gammaS;
  const beta = 1 - alpha;
  const posteriorVar = posteriorVariance(gammas);
  return tf.tidy(() => {
    const mean = tf.add(
      tf.mul(x0, (beta * Math.sqrt(gammaS)) / (1 - gammaT)),
      tf.mul(xT, (Math.sqrt(alpha) * (1 - gammaS)) / (1 - gammaT)),
    );
    return (z ? tf.add(mean, tf.mul(Math.sqrt(posteriorVar), z)) : mean) as tf.Tensor4D;
  });
}

/**
 * DDIM(η) step, NHWC: ε̂ = (x_t − √γ_t·x̂0)/√(1−γ_t) (from the thresholded x̂0),
 * x_s = √γ_s·x̂0 + √(1−γ_s − η²β̃)·ε̂ + η·√β̃·z. η = 0 is deterministic (z unused); without z, the mean.
 */
export function ddimStep(
  x0: tf.Tensor4D,
  xT: tf.Tensor4D,
  gammas: StepGammas,
  eta: number,
  z?: tf.Tensor4D,
): tf.Tensor4D {
  if (!(eta >= 0)) throw new RangeError(`DDIM eta must be ≥ 0, got ${eta}`);
  const { gammaT, gammaS } = gammas;
  const posteriorVar = posteriorVariance(gammas);
  // 1 − γ_s − η²β̃ ≥ 0 for η ≤ 1 in exact arithmetic; clamp rounding (and η > 1) at 0.
  const epsCoefficient = Math.sqrt(Math.max(1 - gammaS - eta * eta * posteriorVar, 0));
  const noiseCoefficient = eta * Math.sqrt(posteriorVar);
  return tf.tidy(() => {
    const eps = epsFromX0(xT, x0, gammaT);
    const mean = tf.add(tf.mul(Math.sqrt(gammaS), x0), tf.mul(epsCoefficient, eps));
    return (z && noiseCoefficient > 0 ? tf.add(mean, tf.mul(noiseCoefficient, z)) : mean) as tf.Tensor4D;
  });
}
