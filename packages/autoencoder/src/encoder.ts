import type * as tf from '@tensorflow/tfjs-core';
import type { ParamSpec } from '@matryoshka-ts/core';
import { type Params, conv2d, convSpecs, normSpecs } from '@matryoshka-ts/layers';
import {
  type BlockOptions,
  attnBlock,
  attnBlockSpecs,
  downsample,
  downsampleSpecs,
  outputHead,
  resnetBlock,
  resnetBlockSpecs,
} from './blocks.js';
import type { AutoencoderKLConfig } from './config.js';

/** One level of the encoder or decoder: its residual blocks' widths and whether each has attention. */
export interface LevelPlan {
  /** [cin, cout] of each residual block. */
  blocks: Array<[number, number]>;
  /** Every block is followed by an attention block (the level's resolution is in `attnResolutions`). */
  attention: boolean;
  /** Ends with a down- (encoder) or is followed by an up- (decoder) sampler. */
  resample: boolean;
}

/**
 * The encoder's levels: level i has `numResBlocks` blocks from `ch·chMult[i−1]` (ch at level 0) to
 * `ch·chMult[i]`, attention where the nominal resolution (halved per level) is listed, and a
 * downsampler after every level but the last.
 */
export function encoderPlan(c: AutoencoderKLConfig): LevelPlan[] {
  const levels = c.chMult.length;
  return c.chMult.map((m, i) => {
    let cin = c.ch * (i === 0 ? 1 : c.chMult[i - 1]);
    const blocks: Array<[number, number]> = [];
    for (let j = 0; j < c.numResBlocks; j++) {
      blocks.push([cin, c.ch * m]);
      cin = c.ch * m;
    }
    const resolution = c.resolution / 2 ** i;
    return { blocks, attention: c.attnResolutions.includes(resolution), resample: i !== levels - 1 };
  });
}

/** The mid block (block_1 → attn_1 → block_2) at width `c`, under `prefix` (`encoder.` / `decoder.`). */
export function midSpecs(prefix: string, c: number): ParamSpec[] {
  return [
    ...resnetBlockSpecs(`${prefix}mid.block_1`, c, c),
    ...attnBlockSpecs(`${prefix}mid.attn_1`, c),
    ...resnetBlockSpecs(`${prefix}mid.block_2`, c, c),
  ];
}

export function midBlock(P: Params, prefix: string, x: tf.Tensor4D, options: BlockOptions): tf.Tensor4D {
  const h = attnBlock(P, `${prefix}mid.attn_1`, resnetBlock(P, `${prefix}mid.block_1`, x, options));
  return resnetBlock(P, `${prefix}mid.block_2`, h, options);
}

export function encoderSpecs(c: AutoencoderKLConfig): ParamSpec[] {
  const plan = encoderPlan(c);
  const top = c.ch * c.chMult[c.chMult.length - 1];
  const specs = convSpecs('encoder.conv_in', 3, c.inChannels, c.ch);
  plan.forEach((level, i) => {
    level.blocks.forEach(([cin, cout], j) => {
      specs.push(...resnetBlockSpecs(`encoder.down.${i}.block.${j}`, cin, cout));
      if (level.attention) specs.push(...attnBlockSpecs(`encoder.down.${i}.attn.${j}`, cout));
    });
    if (level.resample) specs.push(...downsampleSpecs(`encoder.down.${i}.downsample`, level.blocks.at(-1)![1]));
  });
  specs.push(...midSpecs('encoder.', top), ...normSpecs('encoder.norm_out', top));
  specs.push(...convSpecs('encoder.conv_out', 3, top, 2 * c.zChannels));
  return specs;
}

/** x [B, H, W, inChannels] → [B, H/f, W/f, 2·zChannels] (mean and log-variance before quant_conv). */
export function encoderForward(
  P: Params,
  c: AutoencoderKLConfig,
  x: tf.Tensor4D,
  options: BlockOptions = {},
): tf.Tensor4D {
  let h = conv2d(P, 'encoder.conv_in', x);
  encoderPlan(c).forEach((level, i) => {
    level.blocks.forEach((_, j) => {
      h = resnetBlock(P, `encoder.down.${i}.block.${j}`, h, options);
      if (level.attention) h = attnBlock(P, `encoder.down.${i}.attn.${j}`, h);
    });
    if (level.resample) h = downsample(P, `encoder.down.${i}.downsample`, h);
  });
  return outputHead(P, 'encoder.', midBlock(P, 'encoder.', h, options));
}
