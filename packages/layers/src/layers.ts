import * as tf from '@tensorflow/tfjs-core';
import { CONV_BIAS, type GroupNormActOptions, convBias, groupNormAct } from '@matryoshka-ts/kernels';
import type { ParamLookup, ParamSpec } from '@matryoshka-ts/core';

/**
 * Layer primitives on NHWC tensors, each with the specs of the parameters it reads. Parameters
 * are looked up by their state-dict name through a `Params` getter, so the same forward code
 * runs on live weights, EMA weights, or tensors being differentiated.
 */
export type Params = ParamLookup;

/** Builds a `Params` getter over a map, with an error that names a missing parameter. */
export function paramsFrom(map: Map<string, tf.Tensor>): Params {
  return (name) => {
    const t = map.get(name);
    if (!t) throw new Error(`parameter '${name}' is not in the model`);
    return t;
  };
}

// ---------------------------------------------------------------- parameter specs

/** A 2-D convolution `k×k`, `cin → cout`: weight HWIO, bias; PyTorch default init or zeros. */
export function convSpecs(name: string, k: number, cin: number, cout: number, zero = false): ParamSpec[] {
  const fanIn = cin * k * k;
  return [
    {
      name: `${name}.weight`,
      shape: [k, k, cin, cout],
      layout: 'conv2d',
      init: zero ? { kind: 'zeros' } : { kind: 'fanInUniform', fanIn },
    },
    {
      name: `${name}.bias`,
      shape: [cout],
      layout: 'vector',
      init: zero ? { kind: 'zeros' } : { kind: 'fanInUniform', fanIn },
    },
  ];
}

/** A linear layer `cin → cout` (weight [in, out]). */
export function linearSpecs(
  name: string,
  cin: number,
  cout: number,
  options: { zero?: boolean; bias?: boolean } = {},
): ParamSpec[] {
  const init = options.zero ? ({ kind: 'zeros' } as const) : ({ kind: 'fanInUniform', fanIn: cin } as const);
  const specs: ParamSpec[] = [{ name: `${name}.weight`, shape: [cin, cout], layout: 'linear', init }];
  if (options.bias ?? true) specs.push({ name: `${name}.bias`, shape: [cout], layout: 'vector', init });
  return specs;
}

/** GroupNorm or LayerNorm affine parameters over `c` channels. */
export function normSpecs(name: string, c: number): ParamSpec[] {
  return [
    { name: `${name}.weight`, shape: [c], layout: 'vector', init: { kind: 'ones' } },
    { name: `${name}.bias`, shape: [c], layout: 'vector', init: { kind: 'zeros' } },
  ];
}

// ---------------------------------------------------------------- layers

/**
 * 3×3 (or k×k) convolution + bias, stride 1 or 2, zero padding (k−1)/2 on every side as PyTorch
 * pads, optionally followed by `+ residual`: one fused kernel on the `native` backend.
 */
export function conv2d(
  P: Params,
  name: string,
  x: tf.Tensor4D,
  stride: 1 | 2 = 1,
  residual?: tf.Tensor4D,
): tf.Tensor4D {
  const w = P(`${name}.weight`) as tf.Tensor4D;
  const k = w.shape[0];
  if (k === 1 && stride === 1) return conv1x1(P, name, x, residual);
  const p = (k - 1) / 2;
  // Explicit padding: tfjs's 'same' pads asymmetrically for stride 2 (0 before, 1 after).
  return convBias(x, w, P(`${name}.bias`), {
    strides: stride,
    pad:
      stride === 1
        ? 'same'
        : [
            [0, 0],
            [p, p],
            [p, p],
            [0, 0],
          ],
    residual,
  });
}

/**
 * 1×1 convolution (+ bias, + an optional residual): the fused convolution where a backend has it
 * (`native`, whose convolutions run 1×1 layers directly), else one matrix product over the
 * channel axis.
 */
export function conv1x1(P: Params, name: string, x: tf.Tensor4D, residual?: tf.Tensor4D): tf.Tensor4D {
  const w = P(`${name}.weight`);
  if (tf.getKernel(CONV_BIAS, tf.getBackend()))
    return convBias(x, w as tf.Tensor4D, P(`${name}.bias`), { pad: 'valid', residual });
  const [b, h, wd, c] = x.shape;
  const cout = w.shape[3] as number;
  const y = tf.matMul(tf.reshape(x, [b * h * wd, c]), tf.reshape(w, [c, cout]));
  const out = tf.reshape(tf.add(y, P(`${name}.bias`)), [b, h, wd, cout]) as tf.Tensor4D;
  return residual ? (tf.add(out, residual) as tf.Tensor4D) : out;
}

/** Linear layer over the last axis: y = x·W (+ b). */
export function linear(P: Params, name: string, x: tf.Tensor, bias = true): tf.Tensor {
  const w = P(`${name}.weight`);
  const shape = x.shape;
  const cin = shape[shape.length - 1] as number;
  const y = tf.matMul(tf.reshape(x, [-1, cin]), w);
  const out = bias ? tf.add(y, P(`${name}.bias`)) : y;
  return tf.reshape(out, [...shape.slice(0, -1), w.shape[1] as number]);
}

/**
 * GroupNorm over [B, H, W, C] (statistics per sample and group over H, W and the group's
 * channels), optionally followed by a per-sample scale/shift and SiLU: one fused kernel on the
 * `native` backend, the same formula in tfjs ops elsewhere (`@matryoshka-ts/kernels`).
 */
export function groupNorm(
  P: Params,
  name: string,
  x: tf.Tensor4D,
  groups: number,
  options: Omit<GroupNormActOptions, 'groups'> = {},
): tf.Tensor4D {
  return groupNormAct(x, P(`${name}.weight`), P(`${name}.bias`), { groups, ...options });
}

/** LayerNorm over the last axis. */
export function layerNorm(P: Params, name: string, x: tf.Tensor, eps = 1e-5): tf.Tensor {
  const axis = x.rank - 1;
  const { mean, variance } = tf.moments(x, axis, true);
  const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
  return tf.add(tf.mul(normed, P(`${name}.weight`)), P(`${name}.bias`));
}

/** SiLU: x·σ(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x));
}

/** Exact (erf) GELU: x·Φ(x). */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))) as T;
}

/** Nearest-neighbour 2× upsampling (PyTorch's `interpolate(scale_factor=2)`), from `@matryoshka-ts/kernels`. */
export { upsampleNearest2x } from '@matryoshka-ts/kernels';

/**
 * A 1×1 convolution (or linear layer) restricted to output channels [from, from + n):
 * y = x·W[:, from:from+n] + b[from:from+n].
 */
export function conv1x1Slice(P: Params, name: string, x: tf.Tensor, from: number, n: number): tf.Tensor {
  const w = P(`${name}.weight`);
  const cin = x.shape[x.rank - 1] as number;
  const cout = w.shape[w.rank - 1] as number;
  const wSlice = tf.slice(tf.reshape(w, [cin, cout]), [0, from], [cin, n]);
  const y = tf.add(tf.matMul(tf.reshape(x, [-1, cin]), wSlice), tf.slice(P(`${name}.bias`), [from], [n]));
  return tf.reshape(y, [...x.shape.slice(0, -1), n]);
}

/**
 * Multi-head scaled dot-product attention, heads taken as contiguous channel groups.
 * q: [B, Nq, C], k, v: [B, Nk, C] → [B, Nq, C]. q and k are each scaled by (C/heads)^(−1/4)
 * (more stable in low precision than scaling the product). `keyMask` [B, Nk] (1 = attend)
 * excludes padded keys.
 */
export function multiHeadAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  heads: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor3D {
  const [b, nq, c] = q.shape;
  const nk = k.shape[1];
  const ch = c / heads;
  const scale = 1 / Math.sqrt(Math.sqrt(ch));
  const split = (t: tf.Tensor3D, n: number) => tf.transpose(tf.reshape(t, [b, n, heads, ch]), [0, 2, 1, 3]);
  let logits = tf.matMul(split(tf.mul(q, scale), nq), split(tf.mul(k, scale), nk), false, true); // [B, h, Nq, Nk]
  if (keyMask) {
    // −1e30 instead of −∞: identical softmax whenever a key is unmasked, and no NaN gradients.
    const bias = tf.reshape(tf.mul(tf.sub(1, keyMask), -1e30), [b, 1, 1, nk]);
    logits = tf.add(logits, bias);
  }
  const out = tf.matMul(tf.softmax(logits), split(v, nk)); // [B, h, Nq, ch]
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [b, nq, c]);
}
