import type * as tf from '@tensorflow/tfjs-core';
import type { ParamSpec } from '@matryoshka-ts/core';
import { type Params, conv2d, convSpecs, groupNorm, normSpecs } from '@matryoshka-ts/layers';
import {
  type BlockOptions,
  attnBlock,
  attnBlockSpecs,
  resnetBlock,
  resnetBlockSpecs,
  upsample,
  upsampleSpecs,
} from './blocks.js';
import { type AutoencoderKLConfig, NORM_EPS, NORM_GROUPS } from './config.js';
import { type LevelPlan, midBlock, midSpecs } from './encoder.js';

/**
 * The decoder's levels, indexed like CompVis's `decoder.up` (index i is the encoder's level i) but
 * run from the last to the first: `numResBlocks + 1` blocks each, no skip connections, an
 * upsampler after every level but level 0.
 */
export function decoderPlan(c: AutoencoderKLConfig): LevelPlan[] {
  const levels = c.chMult.length;
  const plan: LevelPlan[] = new Array(levels);
  let cin = c.ch * c.chMult[levels - 1];
  for (let i = levels - 1; i >= 0; i--) {
    const blocks: Array<[number, number]> = [];
    for (let j = 0; j <= c.numResBlocks; j++) {
      blocks.push([cin, c.ch * c.chMult[i]]);
      cin = c.ch * c.chMult[i];
    }
    const resolution = c.resolution / 2 ** i;
    plan[i] = { blocks, attention: c.attnResolutions.includes(resolution), resample: i !== 0 };
  }
  return plan;
}

export function decoderSpecs(c: AutoencoderKLConfig): ParamSpec[] {
  const top = c.ch * c.chMult[c.chMult.length - 1];
  const specs = [...convSpecs('decoder.conv_in', 3, c.zChannels, top), ...midSpecs('decoder.', top)];
  // In CompVis's state-dict order: up.0 first, although it runs last.
  decoderPlan(c).forEach((level, i) => {
    level.blocks.forEach(([cin, cout], j) => {
      specs.push(...resnetBlockSpecs(`decoder.up.${i}.block.${j}`, cin, cout));
      if (level.attention) specs.push(...attnBlockSpecs(`decoder.up.${i}.attn.${j}`, cout));
    });
    if (level.resample) specs.push(...upsampleSpecs(`decoder.up.${i}.upsample`, level.blocks.at(-1)![1]));
  });
  specs.push(...normSpecs('decoder.norm_out', c.ch * c.chMult[0]));
  specs.push(...convSpecs('decoder.conv_out', 3, c.ch * c.chMult[0], c.outChannels));
  return specs;
}

/** z [B, h, w, zChannels] (after post_quant_conv) → image [B, h·f, w·f, outChannels]. */
export function decoderForward(
  P: Params,
  c: AutoencoderKLConfig,
  z: tf.Tensor4D,
  options: BlockOptions = {},
): tf.Tensor4D {
  return conv2d(P, 'decoder.conv_out', decoderFeatures(P, c, z, options));
}

/**
 * Everything of the decoder but its last layer: swish(norm_out(·)) [B, h·f, w·f, ch·chMult[0]], the
 * input of `decoder.conv_out`. The training loss needs it for the adaptive GAN weight, which is
 * set by the gradients w.r.t. that layer's weight (`LAST_LAYER`).
 */
export function decoderFeatures(
  P: Params,
  c: AutoencoderKLConfig,
  z: tf.Tensor4D,
  options: BlockOptions = {},
): tf.Tensor4D {
  let h = midBlock(P, 'decoder.', conv2d(P, 'decoder.conv_in', z), options);
  const plan = decoderPlan(c);
  for (let i = plan.length - 1; i >= 0; i--) {
    plan[i].blocks.forEach((_, j) => {
      h = resnetBlock(P, `decoder.up.${i}.block.${j}`, h, options);
      if (plan[i].attention) h = attnBlock(P, `decoder.up.${i}.attn.${j}`, h);
    });
    if (plan[i].resample) h = upsample(P, `decoder.up.${i}.upsample`, h);
  }
  // The `outputHead` of blocks.ts without its convolution.
  return groupNorm(P, 'decoder.norm_out', h, NORM_GROUPS, { eps: NORM_EPS, silu: true });
}
