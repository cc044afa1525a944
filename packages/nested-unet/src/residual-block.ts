import * as tf from '@tensorflow/tfjs-core';
import type { ParamSpec } from '@matryoshka-ts/core';
import { repeatFrames } from './temporal.js';
import {
  type Params,
  conv2d,
  conv1x1,
  convSpecs,
  groupNorm,
  linear,
  linearSpecs,
  normSpecs,
} from '@matryoshka-ts/layers';

/** Parameters of a residual block `cin → cout` conditioned on a time embedding of width T. */
export function residualBlockSpecs(name: string, cin: number, cout: number, timeEmbedDim: number): ParamSpec[] {
  return [
    ...normSpecs(`${name}.norm1`, cin),
    ...convSpecs(`${name}.conv1`, 3, cin, cout),
    ...linearSpecs(`${name}.time_layer`, timeEmbedDim, 2 * cout),
    ...normSpecs(`${name}.norm2`, cout),
    ...convSpecs(`${name}.conv2`, 3, cout, cout, true),
    ...(cin !== cout ? convSpecs(`${name}.conv3`, 1, cin, cout) : []),
  ];
}

export interface ResidualBlockOptions {
  groups: number;
  /** Dropout rate; applied only when `training` is true. */
  dropout?: number;
  training?: boolean;
}

/**
 * Residual block with scale-and-shift time conditioning:
 * h = conv1(SiLU(GN(x))); (a, b) = Linear(SiLU(temb)); h = SiLU(GN(h)·(1 + a) + b);
 * h = conv2(dropout(h)); out = h + x (x through a 1×1 conv when channels change).
 * `tembAct` is SiLU(temb), which the level computes once for all its blocks; `x` may hold several
 * frames per sample ([B·F, H, W, C]), each modulated by its sample's embedding.
 */
export function residualBlock(
  P: Params,
  name: string,
  x: tf.Tensor4D,
  tembAct: tf.Tensor2D,
  options: ResidualBlockOptions,
): tf.Tensor4D {
  let h = conv2d(P, `${name}.conv1`, groupNorm(P, `${name}.norm1`, x, options.groups, { silu: true }));
  const cout = h.shape[3];
  // (a, b) as one [B, 2C] tensor: the fused GroupNorm reads scale and shift from it in place.
  // A clip's frames (adjacent rows) share their sample's time embedding.
  // (A level that sees no sample of a mixed batch has 0 rows of both.)
  const frames = tembAct.shape[0] > 0 ? x.shape[0] / tembAct.shape[0] : 1;
  const ab = repeatFrames(linear(P, `${name}.time_layer`, tembAct), frames);
  h = groupNorm(P, `${name}.norm2`, h, options.groups, { modulation: ab, silu: true });
  if (options.training && options.dropout) h = tf.dropout(h, options.dropout) as tf.Tensor4D;
  const skip = x.shape[3] !== cout ? conv1x1(P, `${name}.conv3`, x) : x;
  return conv2d(P, `${name}.conv2`, h, 1, skip);
}
