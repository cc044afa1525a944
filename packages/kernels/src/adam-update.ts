import * as tf from '@tensorflow/tfjs-core';

export const ADAM_UPDATE = 'MdmAdamUpdate';

/** One Adam step's constants: the bias corrections c1 = 1 − β1ᵗ and c2 = √(1 − β2ᵗ) are given. */
export interface AdamUpdateAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  c1: number;
  c2: number;
}

/**
 * One Adam update of one parameter tensor (Kingma & Ba, with ε outside the corrected root):
 *   m' = β1·m + (1 − β1)·g,   v' = β2·v + (1 − β2)·g²,   p' = p − (lr / c1) · m' / (√v' / c2 + ε).
 * Returns [p', m', v']. Backends with the fused kernel (`native`) compute it in one pass; elsewhere
 * it is the same formula in tfjs ops (13 kernels), so results agree to float32 rounding.
 */
export function adamUpdate(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  attrs: AdamUpdateAttrs,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  if (tf.getKernel(ADAM_UPDATE, tf.getBackend()) && [p, g, m, v].every((t) => t.dtype === 'float32')) {
    return tf.engine().runKernel(ADAM_UPDATE, { p, g, m, v }, attrs as unknown as tf.NamedAttrMap) as unknown as [
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
    ];
  }
  const { lr, beta1, beta2, eps, c1, c2 } = attrs;
  return tf.tidy(() => {
    const m1 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
    const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
    const p1 = tf.sub(p, tf.mul(tf.div(m1, tf.add(tf.div(tf.sqrt(v1), c2), eps)), lr / c1));
    return [p1, m1, v1] as [tf.Tensor, tf.Tensor, tf.Tensor];
  });
}
