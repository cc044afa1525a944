import * as tf from '@tensorflow/tfjs-core';

/**
 * The encoder's diagonal Gaussian posterior q(z|x) = N(mean, diag(exp(logvar))), NHWC, from the
 * moments [mean | logvar] along channels. The log-variance is clamped to [−30, 20] as CompVis
 * clamps it (gradient 0 outside, as torch.clamp's).
 */
export interface DiagonalGaussian {
  mean: tf.Tensor4D;
  logvar: tf.Tensor4D;
  /** exp(logvar / 2). */
  std: tf.Tensor4D;
}

export const LOGVAR_MIN = -30;
export const LOGVAR_MAX = 20;

export function diagonalGaussian(moments: tf.Tensor4D): DiagonalGaussian {
  const [mean, logvar, std] = tf.tidy(() => {
    const [m, raw] = tf.split(moments, 2, 3) as [tf.Tensor4D, tf.Tensor4D];
    const lv = tf.clipByValue(raw, LOGVAR_MIN, LOGVAR_MAX);
    return [m, lv, tf.exp(tf.mul(lv, 0.5))] as tf.Tensor4D[];
  });
  return { mean, logvar, std };
}

/** z = mean + std · ε, with ε ~ N(0, I) given (so a caller's seeded noise decides it). */
export function samplePosterior(p: DiagonalGaussian, eps: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.add(p.mean, tf.mul(p.std, eps)));
}

/** The posterior's mode: its mean. */
export function posteriorMode(p: DiagonalGaussian): tf.Tensor4D {
  return p.mean.clone();
}

/** KL(q ‖ N(0, I)) per sample: ½ Σ_{h,w,c} (mean² + var − 1 − logvar). */
export function klDivergence(p: DiagonalGaussian): tf.Tensor1D {
  return tf.tidy(() => {
    const terms = tf.sub(tf.add(tf.square(p.mean), tf.exp(p.logvar)), tf.add(1, p.logvar));
    return tf.mul(tf.sum(terms, [1, 2, 3]), 0.5) as tf.Tensor1D;
  });
}

/** −log q(x) per sample: ½ Σ (log 2π + logvar + (x − mean)² / var). */
export function negativeLogLikelihood(p: DiagonalGaussian, x: tf.Tensor4D): tf.Tensor1D {
  return tf.tidy(() => {
    const terms = tf.add(
      tf.add(Math.log(2 * Math.PI), p.logvar),
      tf.div(tf.square(tf.sub(x, p.mean)), tf.exp(p.logvar)),
    );
    return tf.mul(tf.sum(terms, [1, 2, 3]), 0.5) as tf.Tensor1D;
  });
}

export function disposePosterior(p: DiagonalGaussian): void {
  tf.dispose([p.mean, p.logvar, p.std]);
}
