import * as tf from '@tensorflow/tfjs-core';
import type { ParamSpec } from '@matryoshka-ts/core';
import {
  type Params,
  conv1x1,
  conv1x1Slice,
  convSpecs,
  gelu,
  groupNorm,
  layerNorm,
  linearSpecs,
  multiHeadAttention,
  normSpecs,
} from '@matryoshka-ts/layers';

/**
 * Parameters of a spatial attention layer over `c` channels, with cross-attention to text of width `textWidth`
 * (0 = none).
 */
export function attentionLayerSpecs(name: string, c: number, textWidth: number, ffn: boolean): ParamSpec[] {
  return [
    ...normSpecs(`${name}.norm`, c),
    ...convSpecs(`${name}.qkv`, 1, c, 3 * c),
    ...(textWidth > 0
      ? [...normSpecs(`${name}.norm_cond`, textWidth), ...linearSpecs(`${name}.kv_cond`, textWidth, 2 * c)]
      : []),
    ...convSpecs(`${name}.proj_out`, 1, c, c, true),
    ...(ffn
      ? [
          ...normSpecs(`${name}.ffn.0`, c),
          ...convSpecs(`${name}.ffn.1`, 1, c, 4 * c),
          ...convSpecs(`${name}.ffn.3`, 1, 4 * c, c, true),
        ]
      : []),
  ];
}

/** Text tokens as every cross-attention sees them. */
export interface TextContext {
  /** Projected tokens [B, L, P]. */
  tokens: tf.Tensor3D;
  /** [B, L] with 1 for real tokens, or undefined when cross-attention ignores padding. */
  mask?: tf.Tensor2D;
}

/**
 * Attention layer on [B, H, W, C]: q, k, v from a 1×1 conv of GroupNorm32(x); spatial
 * self-attention; with text, the same queries attend to Linear(LayerNorm(tokens)) keys/values
 * with their own softmax and the two results are summed; zero-initialised 1×1 output projection
 * with a residual; then the optional feed-forward x + 1×1(GELU(1×1(GN32(x)))).
 */
export function attentionLayer(
  P: Params,
  name: string,
  x: tf.Tensor4D,
  heads: number,
  text?: TextContext,
  ffn = false,
): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  // q, k, v (in that order along the 3C outputs) as three products with slices of the weight,
  // rather than one product and a split of the large activation.
  const normed = tf.reshape(groupNorm(P, `${name}.norm`, x, 32), [b, h * w, c]);
  const [q, k, v] = [0, 1, 2].map((i) => conv1x1Slice(P, `${name}.qkv`, normed, i * c, c)) as [
    tf.Tensor3D,
    tf.Tensor3D,
    tf.Tensor3D,
  ];
  let a = multiHeadAttention(q, k, v, heads);
  if (text) {
    const tokens = layerNorm(P, `${name}.norm_cond`, text.tokens);
    const [kc, vc] = [0, 1].map((i) => conv1x1Slice(P, `${name}.kv_cond`, tokens, i * c, c)) as [
      tf.Tensor3D,
      tf.Tensor3D,
    ];
    a = tf.add(a, multiHeadAttention(q, kc, vc, heads, text.mask));
  }
  let out: tf.Tensor4D = conv1x1(P, `${name}.proj_out`, tf.reshape(a, [b, h, w, c]), x);
  if (ffn) {
    const hidden = gelu(conv1x1(P, `${name}.ffn.1`, groupNorm(P, `${name}.ffn.0`, out, 32)));
    out = conv1x1(P, `${name}.ffn.3`, hidden, out);
  }
  return out;
}
