import * as tf from '@tensorflow/tfjs-core';

/** √γ and √(1−γ) of per-sample signal variances γ = ᾱ ([B]), shaped [B, 1, 1, 1] to scale NHWC images. */
export function signalAndNoiseScales(gamma: tf.Tensor1D): { alpha: tf.Tensor4D; sigma: tf.Tensor4D } {
  return tf.tidy(() => {
    const g = tf.reshape(gamma, [-1, 1, 1, 1]) as tf.Tensor4D;
    return { alpha: tf.sqrt(g), sigma: tf.sqrt(tf.sub(1, g)) as tf.Tensor4D };
  });
}

/** The forward process x_t = √γ·x0 + √(1−γ)·ε (NHWC images, γ per sample [B]). */
export function noisyImage(x0: tf.Tensor4D, eps: tf.Tensor4D, gamma: tf.Tensor1D): tf.Tensor4D {
  return tf.tidy(() => {
    const { alpha, sigma } = signalAndNoiseScales(gamma);
    return tf.add(tf.mul(alpha, x0), tf.mul(sigma, eps));
  });
}

/** The velocity v = √γ·ε − √(1−γ)·x0 (NHWC images, γ per sample [B]). */
export function velocity(x0: tf.Tensor4D, eps: tf.Tensor4D, gamma: tf.Tensor1D): tf.Tensor4D {
  return tf.tidy(() => {
    const { alpha, sigma } = signalAndNoiseScales(gamma);
    return tf.sub(tf.mul(alpha, eps), tf.mul(sigma, x0));
  });
}

/**
 * One diffusion sample at every level (level 0 = highest resolution first), full batch B at
 * every level: clean images x0, noises ε, signal variances γ [B] and noisy images x_t (NHWC).
 * A plain object type, so `tf.dispose(levels)` frees it whole.
 */
export type NoisyLevels = {
  x0: tf.Tensor4D[];
  eps: tf.Tensor4D[];
  gamma: tf.Tensor1D[];
  xt: tf.Tensor4D[];
};

/**
 * Noises every level: x_t,N = √γ_N·x0_N + √(1−γ_N)·ε_N; the inputs are cloned so the result can be disposed as a
 * whole.
 */
export function noiseLevels(x0: tf.Tensor4D[], eps: tf.Tensor4D[], gamma: tf.Tensor1D[]): NoisyLevels {
  if (eps.length !== x0.length || gamma.length !== x0.length) {
    throw new Error(
      `noiseLevels: ${x0.length} clean images, ${eps.length} noises and ${gamma.length} γ vectors; ` +
        `need one of each per level`,
    );
  }
  x0.forEach((x, n) => {
    if (eps[n].shape.join() !== x.shape.join())
      throw new Error(`level ${n}: noise [${eps[n].shape}] does not match the image [${x.shape}]`);
    if (gamma[n].shape[0] !== x.shape[0])
      throw new Error(`level ${n}: ${gamma[n].shape[0]} γ values for ${x.shape[0]} samples`);
  });
  return tf.tidy(() => ({
    x0: x0.map((x) => tf.clone(x)),
    eps: eps.map((e) => tf.clone(e)),
    gamma: gamma.map((g) => tf.clone(g)),
    xt: x0.map((x, n) => noisyImage(x, eps[n], gamma[n])),
  }));
}
