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
  /**
   * The same modulation as one [B, 2C] tensor, scale then shift along its last axis (as a
   * residual block's time layer makes it), instead of `scale` and `shift`: no slices to take.
   */
  modulation?: tf.Tensor;
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
export function groupNormAct(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  options: GroupNormActOptions,
): tf.Tensor4D {
  const { groups, eps = 1e-5, silu = false, scale, shift, modulation } = options;
  const [b, , , c] = x.shape;
  if (c % groups !== 0) throw new Error(`groupNormAct: ${c} channels do not split into ${groups} groups`);
  if (!scale !== !shift) throw new Error('groupNormAct: scale and shift come together');
  if (modulation && scale) throw new Error('groupNormAct: give either modulation or scale and shift');
  if (modulation && modulation.size !== 2 * b * c)
    throw new Error(`groupNormAct: modulation has ${modulation.size} values, expected [${b}, ${2 * c}]`);
  if (!tf.getKernel(GROUP_NORM_ACT, tf.getBackend())) {
    if (!modulation) return composite(x, gamma, beta, { groups, eps, silu, scale, shift });
    return tf.tidy(() => {
      const m = tf.reshape(modulation, [b, 2 * c]);
      return composite(x, gamma, beta, {
        groups,
        eps,
        silu,
        scale: tf.slice(m, [0, 0], [b, c]),
        shift: tf.slice(m, [0, c], [b, c]),
      });
    });
  }
  // Always four inputs (zeros when there is no modulation), so the registered gradient can save
  // them by name; the zeros cost 2·B·C values.
  const attrs: GroupNormActAttrs = { groups, eps, silu };
  return tf.tidy(() => {
    const mod = modulation
      ? tf.reshape(modulation, [b, 2 * c])
      : scale && shift
        ? tf.concat([tf.reshape(scale, [b, c]), tf.reshape(shift, [b, c])], 1)
        : tf.zeros([b, 2 * c]);
    return tf
      .engine()
      .runKernel(GROUP_NORM_ACT, { x, gamma, beta, mod }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  });
}

/**
 * The gradient of the fused kernel: one call of the fused gradient kernel, whose four outputs
 * are ∂/∂x, ∂/∂γ, ∂/∂β and ∂/∂(scale | shift). Registered by `registerKernelOverrides`.
 */
export const groupNormActGradConfig: tf.GradConfig = {
  kernelName: GROUP_NORM_ACT,
  inputsToSave: ['x', 'gamma', 'beta', 'mod'],
  gradFunc: (dy, saved, attrs) => {
    const [x, gamma, beta, mod] = saved;
    const out = tf
      .engine()
      .runKernel(GROUP_NORM_ACT_GRAD, { dy: dy as tf.Tensor, x, gamma, beta, mod }, attrs) as tf.Tensor[];
    return { x: () => out[0], gamma: () => out[1], beta: () => out[2], mod: () => out[3] };
  },
};

/** The same formula in tfjs ops (any backend); the reference for the fused kernels. */
function composite(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  o: Required<Omit<GroupNormActOptions, 'scale' | 'shift' | 'modulation'>> & GroupNormActOptions,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const g = tf.reshape(x, [b, h * w, o.groups, c / o.groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    const normed = tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, o.eps))), [b, h, w, c]);
    let z: tf.Tensor4D = tf.add(tf.mul(normed, gamma), beta);
    if (o.scale && o.shift)
      z = tf.add(tf.mul(z, tf.add(tf.reshape(o.scale, [b, 1, 1, c]), 1)), tf.reshape(o.shift, [b, 1, 1, c]));
    return o.silu ? tf.mul(z, tf.sigmoid(z)) : z;
  });
}
