import * as tf from '@tensorflow/tfjs-core';

/**
 * The GAN half of CompVis's `LPIPSWithDiscriminator` (`ldm/modules/losses/contperceptual.py`, with
 * taming's `vqperceptual.py` helpers). Logits are the PatchGAN's map [B, h, w, 1]; every mean is
 * over all its entries, so each patch counts as one real/fake decision.
 */

/** L_D = ½·(mean(relu(1 − D(x))) + mean(relu(1 + D(x̂)))): taming's `hinge_d_loss` (CompVis's default). */
export function hingeDiscriminatorLoss(logitsReal: tf.Tensor, logitsFake: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const real = tf.mean(tf.relu(tf.sub(1, logitsReal)));
    const fake = tf.mean(tf.relu(tf.add(1, logitsFake)));
    return tf.mul(0.5, tf.add(real, fake)) as tf.Scalar;
  });
}

/**
 * L_D = ½·(mean(softplus(−D(x))) + mean(softplus(D(x̂)))): taming's `vanilla_d_loss`, the
 * non-saturating cross-entropy −log σ(D(x)) − log(1 − σ(D(x̂))) written in logits.
 */
export function vanillaDiscriminatorLoss(logitsReal: tf.Tensor, logitsFake: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const real = tf.mean(tf.softplus(tf.neg(logitsReal)));
    const fake = tf.mean(tf.softplus(logitsFake));
    return tf.mul(0.5, tf.add(real, fake)) as tf.Scalar;
  });
}

export type DiscriminatorLossKind = 'hinge' | 'vanilla';

/** `disc_loss` of the config: 'hinge' or 'vanilla'. */
export function discriminatorLoss(
  kind: DiscriminatorLossKind,
): (logitsReal: tf.Tensor, logitsFake: tf.Tensor) => tf.Scalar {
  if (kind === 'hinge') return hingeDiscriminatorLoss;
  if (kind === 'vanilla') return vanillaDiscriminatorLoss;
  throw new Error(`unknown discriminator loss '${kind}' (expected 'hinge' or 'vanilla')`);
}

/** L_G = −mean(D(x̂)): the generator's loss for either discriminator loss, as in CompVis. */
export function generatorLoss(logitsFake: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(logitsFake)) as tf.Scalar);
}

/**
 * taming's `adopt_weight`: `value` (0) while `globalStep < threshold` (disc_start), else `weight`.
 * CompVis multiplies both the generator's GAN term and the discriminator's loss by it, so the
 * discriminator neither trains nor acts before disc_start.
 */
export function adoptWeight(weight: number, globalStep: number, threshold = 0, value = 0): number {
  return globalStep < threshold ? value : weight;
}

/** The parameter whose gradients set the adaptive weight: the decoder's last layer (`get_last_layer`). */
export const LAST_LAYER = 'decoder.conv_out.weight';
/** Added to ‖∇L_G‖ so that a vanishing GAN gradient does not divide by zero. */
export const ADAPTIVE_WEIGHT_EPS = 1e-4;
/** Upper clamp of the adaptive weight. */
export const ADAPTIVE_WEIGHT_MAX = 1e4;

/**
 * `calculate_adaptive_weight` (Esser et al., VQGAN eq. 7):
 * λ = clamp(‖∇_{W_L} L_nll‖ / (‖∇_{W_L} L_G‖ + 1e−4), 0, 1e4) · disc_weight, with ∇_{W_L} the
 * gradients w.r.t. the decoder's last layer weight (`LAST_LAYER`) and ‖·‖ the Frobenius norm. It
 * balances the two terms' pull on the decoder; detached in CompVis, so it is a plain number here.
 */
export function adaptiveWeight(nllGrad: tf.Tensor, gGrad: tf.Tensor, discWeight = 1): number {
  const ratio = frobenius(nllGrad) / (frobenius(gGrad) + ADAPTIVE_WEIGHT_EPS);
  return Math.min(Math.max(ratio, 0), ADAPTIVE_WEIGHT_MAX) * discWeight;
}

/** ‖t‖ summed in float64 (the last layer is small: 3·3·C·3 values). */
function frobenius(t: tf.Tensor): number {
  let sum = 0;
  for (const v of t.dataSync()) sum += v * v;
  return Math.sqrt(sum);
}
