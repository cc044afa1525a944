import * as tf from '@tensorflow/tfjs-core';
import type { ParamSpec } from '@matryoshka-ts/core';
import { convBias } from '@matryoshka-ts/kernels';
import {
  type Params,
  conv1x1,
  conv2d,
  convSpecs,
  groupNorm,
  multiHeadAttention,
  normSpecs,
  upsampleNearest2x,
} from '@matryoshka-ts/layers';
import { NORM_EPS, NORM_GROUPS } from './config.js';

/** The autoencoder's blocks (CompVis `ldm/modules/diffusionmodules/model.py`), NHWC, no time input. */

export interface BlockOptions {
  dropout?: number;
  training?: boolean;
}

const norm = (P: Params, name: string, x: tf.Tensor4D, silu: boolean) =>
  groupNorm(P, name, x, NORM_GROUPS, { eps: NORM_EPS, silu });

/** ResnetBlock `cin → cout`: GN → swish → conv → GN → swish → dropout → conv, plus the (1×1) shortcut. */
export function resnetBlockSpecs(name: string, cin: number, cout: number): ParamSpec[] {
  return [
    ...normSpecs(`${name}.norm1`, cin),
    ...convSpecs(`${name}.conv1`, 3, cin, cout),
    ...normSpecs(`${name}.norm2`, cout),
    ...convSpecs(`${name}.conv2`, 3, cout, cout),
    ...(cin !== cout ? convSpecs(`${name}.nin_shortcut`, 1, cin, cout) : []),
  ];
}

export function resnetBlock(P: Params, name: string, x: tf.Tensor4D, options: BlockOptions = {}): tf.Tensor4D {
  let h = conv2d(P, `${name}.conv1`, norm(P, `${name}.norm1`, x, true));
  h = norm(P, `${name}.norm2`, h, true);
  if (options.training && options.dropout) h = tf.dropout(h, options.dropout) as tf.Tensor4D;
  const skip = x.shape[3] !== h.shape[3] ? conv1x1(P, `${name}.nin_shortcut`, x) : x;
  return conv2d(P, `${name}.conv2`, h, 1, skip);
}

/** AttnBlock over `c` channels: single-head self-attention over all positions, 1×1 q/k/v/proj_out. */
export function attnBlockSpecs(name: string, c: number): ParamSpec[] {
  return [
    ...normSpecs(`${name}.norm`, c),
    ...convSpecs(`${name}.q`, 1, c, c),
    ...convSpecs(`${name}.k`, 1, c, c),
    ...convSpecs(`${name}.v`, 1, c, c),
    ...convSpecs(`${name}.proj_out`, 1, c, c),
  ];
}

/** x + proj_out(softmax(q·kᵀ / √C) · v), q, k, v from GN(x). */
export function attnBlock(P: Params, name: string, x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const n = norm(P, `${name}.norm`, x, false);
  const tokens = (proj: string) => tf.reshape(conv1x1(P, `${name}.${proj}`, n), [b, h * w, c]) as tf.Tensor3D;
  const attended = multiHeadAttention(tokens('q'), tokens('k'), tokens('v'), 1);
  return conv1x1(P, `${name}.proj_out`, tf.reshape(attended, [b, h, w, c]) as tf.Tensor4D, x);
}

/** Downsample: zero pad one row and column at the bottom and right, then a 3×3 convolution of stride 2. */
export function downsampleSpecs(name: string, c: number): ParamSpec[] {
  return convSpecs(`${name}.conv`, 3, c, c);
}

export function downsample(P: Params, name: string, x: tf.Tensor4D): tf.Tensor4D {
  return convBias(x, P(`${name}.conv.weight`) as tf.Tensor4D, P(`${name}.conv.bias`), {
    strides: 2,
    pad: [
      [0, 0],
      [0, 1],
      [0, 1],
      [0, 0],
    ],
  });
}

/** Upsample: nearest ×2, then a 3×3 convolution. */
export function upsampleSpecs(name: string, c: number): ParamSpec[] {
  return convSpecs(`${name}.conv`, 3, c, c);
}

export function upsample(P: Params, name: string, x: tf.Tensor4D): tf.Tensor4D {
  return conv2d(P, `${name}.conv`, upsampleNearest2x(x));
}

/** GN → swish → 3×3 conv: the output head of the encoder and the decoder. */
export function outputHead(P: Params, prefix: string, x: tf.Tensor4D): tf.Tensor4D {
  return conv2d(P, `${prefix}conv_out`, norm(P, `${prefix}norm_out`, x, true));
}
