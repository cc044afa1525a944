import * as tf from '@tensorflow/tfjs-core';
import type { PredictionType } from '@matryoshka-ts/core';
import { signalAndNoiseScales, velocity } from './forward-process.js';
import type { LossTarget } from './types.js';

// Conversions between the network's output and x̂0, ε̂, v̂, all from x_t and γ (signal variance
// ᾱ, per sample [B]); images NHWC. With α = √γ, σ = √(1−γ):
//   x_t = α·x0 + σ·ε,   v = α·ε − σ·x0,   x0 = α·x_t − σ·v,   ε = (x_t − α·x0)/σ.

/** x̂0 (NHWC) from a network output of the given prediction type. */
export function predictX0(
  output: tf.Tensor4D,
  xt: tf.Tensor4D,
  gamma: tf.Tensor1D,
  prediction: PredictionType,
): tf.Tensor4D {
  return tf.tidy(() => {
    const { alpha, sigma } = signalAndNoiseScales(gamma);
    switch (prediction) {
      case 'x0':
        return tf.clone(output);
      case 'eps': // x̂0 = (x_t − σ·ε̂)/α
        return tf.div(tf.sub(xt, tf.mul(sigma, output)), alpha);
      case 'v': // x̂0 = α·x_t − σ·v̂
        return tf.sub(tf.mul(alpha, xt), tf.mul(sigma, output));
      default:
        return unknownPrediction(prediction);
    }
  });
}

/**
 * ε̂ (NHWC) from a network output of the given prediction type. For `x0` and `v` it is
 * ε̂ = (x_t − √γ·x̂0)/√(1−γ), computed in exactly this order as the official code does.
 */
export function predictEps(
  output: tf.Tensor4D,
  xt: tf.Tensor4D,
  gamma: tf.Tensor1D,
  prediction: PredictionType,
): tf.Tensor4D {
  if (prediction === 'eps') return tf.clone(output);
  return tf.tidy(() => {
    const { alpha, sigma } = signalAndNoiseScales(gamma);
    const x0 = predictX0(output, xt, gamma, prediction);
    return tf.div(tf.sub(xt, tf.mul(alpha, x0)), sigma);
  });
}

/** v̂ = √γ·ε̂ − √(1−γ)·x̂0 (NHWC) from a network output of the given prediction type. */
export function predictV(
  output: tf.Tensor4D,
  xt: tf.Tensor4D,
  gamma: tf.Tensor1D,
  prediction: PredictionType,
): tf.Tensor4D {
  if (prediction === 'v') return tf.clone(output);
  return tf.tidy(() =>
    velocity(predictX0(output, xt, gamma, prediction), predictEps(output, xt, gamma, prediction), gamma),
  );
}

/** The network output converted to the loss target's quantity (x̂0, ε̂ or v̂; NHWC). */
export function predictedTarget(
  output: tf.Tensor4D,
  xt: tf.Tensor4D,
  gamma: tf.Tensor1D,
  prediction: PredictionType,
  target: LossTarget,
): tf.Tensor4D {
  switch (target) {
    case 'x0':
      return predictX0(output, xt, gamma, prediction);
    case 'eps':
      return predictEps(output, xt, gamma, prediction);
    case 'v':
      return predictV(output, xt, gamma, prediction);
    default:
      return unknownTarget(target);
  }
}

/** The loss target from the true x0 and ε (NHWC): ε, x0, or v = √γ·ε − √(1−γ)·x0. */
export function lossTarget(target: LossTarget, x0: tf.Tensor4D, eps: tf.Tensor4D, gamma: tf.Tensor1D): tf.Tensor4D {
  switch (target) {
    case 'x0':
      return tf.clone(x0);
    case 'eps':
      return tf.clone(eps);
    case 'v':
      return velocity(x0, eps, gamma);
    default:
      return unknownTarget(target);
  }
}

function unknownPrediction(prediction: never): never {
  throw new Error(`unknown prediction type '${String(prediction)}' (expected eps, x0 or v)`);
}

function unknownTarget(target: never): never {
  throw new Error(`unknown loss target '${String(target)}' (expected eps, x0 or v)`);
}
