import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { Rng } from '@matryoshka-ts/core';
import { NestedUNet, countParams } from './nested-unet.js';
import { maxDiff, randomizeWeights } from './test-models.js';
import type { NestedUNetConfig } from './config.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

/** A single-level 16 px super-resolution UNet. */
const srConfig: NestedUNetConfig = {
  resolution: 16,
  channels: [8, 16],
  resBlocks: [1, 1],
  groups: 4,
  timeEmbedDim: 32,
  midBlock: false,
  lowResCondition: true,
};

describe('super-resolution stage (lowResCondition)', () => {
  it('conv_in takes 2·C channels and the augmentation step has its own MLP', () => {
    const plain = countParams({ ...srConfig, lowResCondition: false }).total;
    const sr = new NestedUNet(srConfig);
    const convIn = sr.specs.find((s) => s.name === 'conv_in.weight')!;
    expect(convIn.shape).toEqual([3, 3, 6, 8]);
    // Extra: conv_in's 3·3·3·8 weights for the condition + aug MLP (8·32 + 32 + 32·32 + 32).
    expect(sr.paramCount - plain).toBe(3 * 3 * 3 * 8 + (8 * 32 + 32) + (32 * 32 + 32));
    sr.dispose();
  });

  it('the output depends on the low-resolution image and its augmentation step; equals the bilinear path', () => {
    const model = new NestedUNet(srConfig);
    randomizeWeights(model, 3);
    const rng = new Rng(1);
    const x = rng.normalTensor([2, 16, 16, 3]) as tf.Tensor4D;
    const low = rng.normalTensor([2, 8, 8, 3]) as tf.Tensor4D;
    const run = (lowRes: tf.Tensor4D, augTimes: number[]) =>
      model.forward({ x: [x], times: [5, 500], lowRes, augTimes })[0];
    const base = run(low, [0, 100]);
    expect(base.shape).toEqual([2, 16, 16, 3]);
    const otherLow = tf.add(low, 0.5) as tf.Tensor4D;
    expect(maxDiff(base, run(otherLow, [0, 100]))).toBeGreaterThan(1e-3);
    expect(maxDiff(base, run(low, [0, 900]))).toBeGreaterThan(1e-3);
    // A low-resolution image given already at 16 px (the bilinear upsampling done by the caller) gives the same output.
    const up = tf.image.resizeBilinear(low, [16, 16], false, true);
    // float32: the same ops on the same values.
    expect(maxDiff(base, run(up, [0, 100]))).toBeLessThan(1e-6);
    model.dispose();
  });

  it('refuses a call without the low-resolution image, and lowRes given to a plain model', () => {
    const sr = new NestedUNet(srConfig);
    const x = [tf.zeros([1, 16, 16, 3]) as tf.Tensor4D];
    expect(() => sr.forward({ x, times: [1] })).toThrow(/needs lowRes/);
    expect(() => sr.forward({ x, times: [1], lowRes: tf.zeros([1, 8, 8, 1]) as tf.Tensor4D, augTimes: [0] })).toThrow(
      /expected NHWC/,
    );
    const plain = new NestedUNet({ ...srConfig, lowResCondition: false });
    expect(() => plain.forward({ x, times: [1], lowRes: tf.zeros([1, 8, 8, 3]) as tf.Tensor4D })).toThrow(
      /not a super-resolution stage/,
    );
    sr.dispose();
    plain.dispose();
  });
});

describe('firstDownsample: false (the latent f8 variant)', () => {
  it('keeps the resolution after the first stage, with the same parameters', () => {
    const base: NestedUNetConfig = { resolution: 8, channels: [8, 32], resBlocks: [1, 1], groups: 8, timeEmbedDim: 32 };
    const f8 = new NestedUNet({ ...base, firstDownsample: false });
    expect(f8.config.levels[0].bottleneckResolution).toBe(8);
    expect(f8.paramCount).toBe(countParams(base).total);
    randomizeWeights(f8, 5);
    const x = new Rng(2).normalTensor([1, 8, 8, 3]) as tf.Tensor4D;
    const out = f8.forward({ x: [x], times: [3] })[0];
    expect(out.shape).toEqual([1, 8, 8, 3]);
    // The same weights in the default model (downsampling to 4 px) compute something else.
    const plain = new NestedUNet(base);
    plain.setWeights(f8.getWeights());
    expect(maxDiff(out, plain.forward({ x: [x], times: [3] })[0])).toBeGreaterThan(1e-4);
    expect(() => new NestedUNet({ ...base, channels: [8], resBlocks: [1], firstDownsample: false })).toThrow(
      /two stages/,
    );
    f8.dispose();
    plain.dispose();
  });
});
