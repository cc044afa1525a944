import * as tf from '@tensorflow/tfjs-core';
import type { ParamSpec } from '@matryoshka-ts/core';
import {
  type Params,
  gelu,
  layerNorm,
  linear,
  linearSpecs,
  multiHeadAttention,
  normSpecs,
} from '@matryoshka-ts/layers';

/**
 * The paper's learnable text head: self-attention layers over the projected language-model
 * tokens (the official code's `lm_head`, SelfAttention1D + MLP blocks). Parameters of one layer.
 */
export function textHeadLayerSpecs(name: string, width: number): ParamSpec[] {
  return [
    ...normSpecs(`${name}.attn.norm`, width),
    ...linearSpecs(`${name}.attn.qkv`, width, 3 * width),
    ...linearSpecs(`${name}.attn.proj_out`, width, width, { zero: true }),
    ...normSpecs(`${name}.mlp.main.0`, width),
    ...linearSpecs(`${name}.mlp.main.1`, width, 4 * width),
    ...linearSpecs(`${name}.mlp.main.3`, 4 * width, width, { zero: true }),
  ];
}

/**
 * One text-head layer on tokens [B, L, P]: x + proj(MHA(LayerNorm(x))) then
 * x + Linear(GELU(Linear(LayerNorm(x)))) with a 4× hidden width. `mask` excludes padded keys.
 */
export function textHeadLayer(P: Params, name: string, x: tf.Tensor3D, heads: number, mask?: tf.Tensor2D): tf.Tensor3D {
  const qkv = linear(P, `${name}.attn.qkv`, layerNorm(P, `${name}.attn.norm`, x)) as tf.Tensor3D;
  const [q, k, v] = tf.split(qkv, 3, 2) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
  let h = tf.add(x, linear(P, `${name}.attn.proj_out`, multiHeadAttention(q, k, v, heads, mask))) as tf.Tensor3D;
  const hidden = gelu(linear(P, `${name}.mlp.main.1`, layerNorm(P, `${name}.mlp.main.0`, h)));
  h = tf.add(h, linear(P, `${name}.mlp.main.3`, hidden)) as tf.Tensor3D;
  return h;
}
