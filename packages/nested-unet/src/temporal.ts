import * as tf from '@tensorflow/tfjs-core';
import type { ParamSpec } from '@matryoshka-ts/core';
import { convBias } from '@matryoshka-ts/kernels';
import {
  type Params,
  conv2d,
  convSpecs,
  gelu,
  layerNorm,
  linear,
  linearSpecs,
  multiHeadAttention,
  normSpecs,
  upsampleNearest2x,
} from '@matryoshka-ts/layers';

// The video model's pieces that run along time (the official `temporal_mode`). A clip of F frames
// is F adjacent rows of the batch: [B·F, H, W, C], sample b's frame f at row b·F + f.

/** Channels per temporal-attention head (fixed at 32 in the official code). */
export const TEMPORAL_HEAD_CHANNELS = 32;

/** [B, D…] → [B·n, D…]: every row repeated n times, sample-major (a sample's value for each of its frames). */
export function repeatFrames<T extends tf.Tensor>(t: T, n: number): T {
  if (n === 1) return t;
  const [b, ...rest] = t.shape;
  const d = rest.reduce((a, x) => a * x, 1);
  return tf.reshape(tf.tile(tf.reshape(t, [b, 1, d]), [1, n, 1]), [b * n, ...rest]) as T;
}

/** A convolution along time, kernel 3, `c → c` channels: weight [3, in, out] (PyTorch Conv1d's [out, in, 3]). */
export function temporalConvSpecs(name: string, c: number): ParamSpec[] {
  const fanIn = 3 * c;
  return [
    { name: `${name}.weight`, shape: [3, c, c], layout: 'conv1d', init: { kind: 'fanInUniform', fanIn } },
    { name: `${name}.bias`, shape: [c], layout: 'vector', init: { kind: 'fanInUniform', fanIn } },
  ];
}

/**
 * Conv1d over the F frames of every pixel (kernel 3, padding 1, zero frames beyond the ends),
 * stride 2 to halve the frames: [B·F, H, W, C] → [B·F/s, H, W, C]. The frames are the height of a
 * [B, F, H·W, C] image and the kernel is 3×1, so it is the backend's ordinary convolution.
 */
function convAlongTime(P: Params, name: string, x: tf.Tensor4D, frames: number, stride: 1 | 2): tf.Tensor4D {
  const [rows, h, w, c] = x.shape;
  const b = rows / frames;
  const weight = P(`${name}.weight`);
  const filter = tf.reshape(weight, [3, 1, weight.shape[1] as number, weight.shape[2] as number]) as tf.Tensor4D;
  const y = convBias(tf.reshape(x, [b, frames, h * w, c]), filter, P(`${name}.bias`), {
    strides: [stride, 1],
    pad: [
      [0, 0],
      [1, 1],
      [0, 0],
      [0, 0],
    ],
  });
  return tf.reshape(y, [b * y.shape[1], h, w, y.shape[3]]);
}

/** Temporal downsampling: Conv1d k3 s2 p1 over frames, F → F/2 at unchanged spatial size. */
export function temporalDownsample(P: Params, name: string, x: tf.Tensor4D, frames: number): tf.Tensor4D {
  return convAlongTime(P, name, x, frames, 2);
}

/** Temporal upsampling: nearest ×2 over frames (frame f → 2f, 2f+1), then Conv1d k3 p1; F → 2F. */
export function temporalUpsample(P: Params, name: string, x: tf.Tensor4D, frames: number): tf.Tensor4D {
  const [rows, h, w, c] = x.shape;
  const b = rows / frames;
  const single = tf.reshape(x, [b, frames, 1, h * w * c]);
  const doubled = tf.reshape(tf.concat([single, single], 2), [b * 2 * frames, h, w, c]) as tf.Tensor4D;
  return convAlongTime(P, name, doubled, 2 * frames, 1);
}

/** The rotary frequencies f_i = 10000^(−2i/d), i < d/2, for heads of d channels (rotary-embedding-torch's). */
export function rotaryFrequencies(headChannels: number): number[] {
  return Array.from({ length: headChannels / 2 }, (_, i) => 10000 ** ((-2 * i) / headChannels));
}

/** Parameters of a temporal-attention block over `c` channels (`rotary`: the frequencies, stored, not trained). */
export function temporalAttentionSpecs(name: string, c: number, rotary: boolean): ParamSpec[] {
  return [
    ...normSpecs(`${name}.attn.norm`, c),
    ...linearSpecs(`${name}.attn.qkv`, c, 3 * c),
    ...linearSpecs(`${name}.attn.proj_out`, c, c, { zero: true }),
    ...(rotary
      ? [
          {
            name: `${name}.attn.pos_emb.freqs`,
            shape: [TEMPORAL_HEAD_CHANNELS / 2],
            layout: 'vector',
            init: { kind: 'values', values: rotaryFrequencies(TEMPORAL_HEAD_CHANNELS) },
            trainable: false,
          } satisfies ParamSpec,
        ]
      : []),
    ...normSpecs(`${name}.mlp.main.0`, c),
    ...linearSpecs(`${name}.mlp.main.1`, c, 4 * c),
    ...linearSpecs(`${name}.mlp.main.3`, 4 * c, c, { zero: true }),
    ...convSpecs(`${name}.down_conv`, 3, c, c),
    ...convSpecs(`${name}.up_conv`, 3, c, c),
  ];
}

/**
 * Rotary position encoding over a sequence of frames ([N, F, C], heads of 32 contiguous
 * channels): channel pair (2i, 2i+1) of every head at position p turns by the angle p·f_i,
 * (a, b) → (a·cos − b·sin, b·cos + a·sin).
 */
export function rotate(x: tf.Tensor3D, freqs: tf.Tensor): tf.Tensor3D {
  const [n, frames, c] = x.shape;
  const half = freqs.shape[0] as number;
  const angles = tf.mul(tf.reshape(tf.range(0, frames, 1, 'float32'), [frames, 1]), tf.reshape(freqs, [1, half]));
  // Broadcast over [N, F, heads, half, 2]: the same angles in every head, one per channel pair.
  const heads = c / (2 * half);
  const cos = tf.reshape(tf.cos(angles), [1, frames, 1, half, 1]);
  const sin = tf.reshape(tf.sin(angles), [1, frames, 1, half, 1]);
  const pairs = tf.reshape(x, [n, frames, heads, half, 2]);
  const [a, b] = tf.split(pairs, 2, 4);
  const rotated = tf.concat([tf.sub(tf.mul(a, cos), tf.mul(b, sin)), tf.add(tf.mul(b, cos), tf.mul(a, sin))], 4);
  return tf.reshape(rotated, [n, frames, c]);
}

/**
 * Temporal-attention block on [B·F, H, W, C] (F = `frames`): h = 3×3 stride-2 conv per frame;
 * at every pixel of h the sequence s of its F frames gets s ← s + proj_out(attention(LayerNorm(s)))
 * (heads of 32 channels, optional rotary encoding of the frame index) and
 * s ← s + MLP(LayerNorm(s)) (4× hidden, GELU); then nearest ×2 in space, 3×3 conv, plus the input.
 */
export function temporalAttentionBlock(
  P: Params,
  name: string,
  x: tf.Tensor4D,
  frames: number,
  rotary = false,
): tf.Tensor4D {
  const h = conv2d(P, `${name}.down_conv`, x, 2);
  const [rows, hh, ww, c] = h.shape;
  const b = rows / frames;
  // [B·F, h, w, C] → [B·h·w, F, C]: one sequence over frames per sample and pixel.
  let s = tf.reshape(tf.transpose(tf.reshape(h, [b, frames, hh * ww, c]), [0, 2, 1, 3]), [b * hh * ww, frames, c]);
  const normed = layerNorm(P, `${name}.attn.norm`, s);
  const qkv = linear(P, `${name}.attn.qkv`, normed) as tf.Tensor3D;
  let [q, k, v] = tf.split(qkv, 3, 2) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
  if (rotary) {
    const freqs = P(`${name}.attn.pos_emb.freqs`);
    q = rotate(q, freqs);
    k = rotate(k, freqs);
  }
  const attended = multiHeadAttention(q, k, v, c / TEMPORAL_HEAD_CHANNELS);
  s = tf.add(s, linear(P, `${name}.attn.proj_out`, attended)) as tf.Tensor3D;
  const hidden = gelu(linear(P, `${name}.mlp.main.1`, layerNorm(P, `${name}.mlp.main.0`, s)));
  s = tf.add(s, linear(P, `${name}.mlp.main.3`, hidden)) as tf.Tensor3D;
  const back = tf.reshape(tf.transpose(tf.reshape(s, [b, hh * ww, frames, c]), [0, 2, 1, 3]), [rows, hh, ww, c]);
  return conv2d(P, `${name}.up_conv`, upsampleNearest2x(back as tf.Tensor4D), 1, x);
}
