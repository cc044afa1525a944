import * as tf from '@tensorflow/tfjs-core';
import type { Lpips } from './perceptual/lpips.js';
import { type DiagonalGaussian, klDivergence } from './posterior.js';

/**
 * The reconstruction and KL half of CompVis's `LPIPSWithDiscriminator`
 * (`ldm/modules/losses/contperceptual.py`); the GAN half is in adversarial.ts. Images are NHWC in
 * [−1, 1]; "per sample" sums run over H·W·C, and every batch mean divides a sum by B, as CompVis
 * writes `torch.sum(x) / x.shape[0]`.
 */

/**
 * The loss weights of CompVis's KL autoencoder configs (`configs/autoencoder/autoencoder_kl_*.yaml`:
 * `kl_weight: 0.000001`, `disc_weight: 0.5`); the class's own defaults (kl_weight 1, disc_weight 1)
 * are never used by those configs. The perceptual weight, the discriminator factor and the initial
 * log-variance keep the class defaults.
 */
export const KL_WEIGHT = 1e-6;
export const DISC_WEIGHT = 0.5;
export const DISC_FACTOR = 1;
export const PERCEPTUAL_WEIGHT = 1;
export const LOGVAR_INIT = 0;
/** `base_learning_rate` of those configs; main.py multiplies it by batch size × GPUs × accumulated batches. */
export const BASE_LEARNING_RATE = 4.5e-6;

export interface ReconstructionLossOptions {
  /** The perceptual metric; without it the loss is the L1 term alone. */
  lpips?: Lpips;
  /** Weight of the LPIPS term (1); ≤ 0 leaves it out, as CompVis's `if self.perceptual_weight > 0`. */
  perceptualWeight?: number;
}

/**
 * rec_loss = |x − x̂| + perceptual_weight · LPIPS(x, x̂), [B, H, W, C]: the LPIPS distance of each
 * sample is added to every one of its elements (PyTorch broadcasts the [B, 1, 1, 1] distance).
 */
export function reconstructionLoss(
  x: tf.Tensor4D,
  xRec: tf.Tensor4D,
  options: ReconstructionLossOptions = {},
): tf.Tensor4D {
  const weight = options.perceptualWeight ?? PERCEPTUAL_WEIGHT;
  return tf.tidy(() => {
    const l1 = tf.abs(tf.sub(x, xRec)) as tf.Tensor4D;
    if (!options.lpips || !(weight > 0)) return l1;
    const p = tf.reshape(options.lpips.distance(x, xRec), [x.shape[0], 1, 1, 1]);
    return tf.add(l1, tf.mul(p, weight)) as tf.Tensor4D;
  });
}

/**
 * nll_loss = Σ (rec / exp(logvar) + logvar) / B: the negative log-likelihood of a Laplace-like
 * output distribution with one learned scalar log-scale `logvar` (CompVis's `self.logvar`).
 */
export function nllLoss(rec: tf.Tensor4D, logvar: tf.Tensor): tf.Scalar {
  if (logvar.size !== 1) throw new Error(`nllLoss: logvar must be one value, got shape [${logvar.shape}]`);
  return tf.tidy(() => {
    const lv = tf.reshape(logvar, []);
    const nll = tf.add(tf.div(rec, tf.exp(lv)), lv);
    return tf.div(tf.sum(nll), rec.shape[0]) as tf.Scalar;
  });
}

/** kl_loss = Σ_b KL(q(z|x_b) ‖ N(0, I)) / B. */
export function klLoss(posterior: DiagonalGaussian): tf.Scalar {
  return tf.tidy(() => {
    const kl = klDivergence(posterior);
    return tf.div(tf.sum(kl), kl.shape[0]) as tf.Scalar;
  });
}
