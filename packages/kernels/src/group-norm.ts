import * as tf from '@tensorflow/tfjs-core';

/** Kernel names of the fused GroupNorm; a backend that registers them gets the fused path. */
export const GROUP_NORM_ACT = 'MdmGroupNormAct';
export const GROUP_NORM_ACT_GRAD = 'MdmGroupNormActGrad';

export interface GroupNormActOptions {
  groups: number;
  eps?: number;
  /** Apply SiLU, z·σ(z), to the result. */
  silu?: boolean;
  /** Per-sample, per-channel modulation [B, C] (or any shape of B·C values): z = u·(1 + scale) + shift. */
  scale?: tf.Tensor;
  shift?: tf.Tensor;
}

/** Attributes of the fused kernels (the same for the forward and the gradient kernel). */
export interface GroupNormActAttrs {
  groups: number;
  eps: number;
  silu: boolean;
}

/**
 * y = act((GN(x)·γ + β)·(1 + scale) + shift) over an NHWC tensor, GN normalising each of `groups`
 * channel groups over H, W and its channels (biased variance, as PyTorch's GroupNorm).
 * Backends with the fused kernels (`native`) run it as one kernel forward and one backward;
 * elsewhere it is the same formula in tfjs ops, so results agree to float32 rounding.
 */
export function groupNormAct(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, options: GroupNormActOptions): tf.Tensor4D {
  const { groups, eps = 1e-5, silu = false, scale, shift } = options;
  const [b, , , c] = x.shape;
  if (c % groups !== 0) throw new Error(`groupNormAct: ${c} channels do not split into ${groups} groups`);
  if (!scale !== !shift) throw new Error('groupNormAct: scale and shift come together');
  if (!tf.getKernel(GROUP_NORM_ACT, tf.getBackend())) return composite(x, gamma, beta, { groups, eps, silu, scale, shift });
  // Always five inputs (zeros when there is no modulation), so the registered gradient can save
  // them by name; the zeros cost B·C values.
  const attrs: GroupNormActAttrs = { groups, eps, silu };
  return tf.tidy(() => {
    const s = scale ? tf.reshape(scale, [b, c]) : tf.zeros([b, c]);
    const t = shift ? tf.reshape(shift, [b, c]) : tf.zeros([b, c]);
    return tf.engine().runKernel(GROUP_NORM_ACT, { x, gamma, beta, scale: s, shift: t }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  });
}

/**
 * The gradient of the fused kernel: one call of the fused gradient kernel, whose five outputs
 * are ∂/∂x, ∂/∂γ, ∂/∂β, ∂/∂scale, ∂/∂shift. Registered by `registerKernelOverrides`.
 */
export const groupNormActGradConfig: tf.GradConfig = {
  kernelName: GROUP_NORM_ACT,
  inputsToSave: ['x', 'gamma', 'beta', 'scale', 'shift'],
  gradFunc: (dy, saved, attrs) => {
    const [x, gamma, beta, scale, shift] = saved;
    const out = tf.engine().runKernel(GROUP_NORM_ACT_GRAD, { dy: dy as tf.Tensor, x, gamma, beta, scale, shift }, attrs) as tf.Tensor[];
    return { x: () => out[0], gamma: () => out[1], beta: () => out[2], scale: () => out[3], shift: () => out[4] };
  },
};

/** The same formula in tfjs ops (any backend); the reference for the fused kernels. */
function composite(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, o: Required<Omit<GroupNormActOptions, 'scale' | 'shift'>> & GroupNormActOptions): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const g = tf.reshape(x, [b, h * w, o.groups, c / o.groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    const normed = tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, o.eps))), [b, h, w, c]);
    let z: tf.Tensor4D = tf.add(tf.mul(normed, gamma), beta);
    if (o.scale && o.shift) z = tf.add(tf.mul(z, tf.add(tf.reshape(o.scale, [b, 1, 1, c]), 1)), tf.reshape(o.shift, [b, 1, 1, c]));
    return o.silu ? tf.mul(z, tf.sigmoid(z)) : z;
  });
}
