// Test helpers (not exported from the package): small configs and fully random weights, so that
// no zero-initialised layer hides a path from a test.
import * as tf from '@tensorflow/tfjs-core';
import { Rng, sizeOf } from '@matryoshka-ts/core';
import type { NestedUNetConfig, UNetLevelConfig } from './config.js';
import type { NestedUNet } from './nested-unet.js';

/** Two levels (16 px outer, 8 px inner with attention + FFN), text with a one-layer head. */
export function tinyNested(overrides: Partial<NestedUNetConfig> = {}): NestedUNetConfig {
  return {
    resolution: 16,
    channels: [8, 16],
    resBlocks: [1, 1],
    groups: 4,
    timeEmbedDim: 32,
    microConditioning: { scale: 16 },
    inner: {
      resolution: 8,
      channels: [32, 32],
      resBlocks: [1, 1],
      attentionLayers: [0, 1],
      groups: 8,
      attentionFfn: true,
      timeEmbedDim: 32,
      microConditioning: { scale: 8 },
    },
    text: { featureDim: 12, projDim: 32, headLayers: 1, maskedCrossAttention: true },
    ...overrides,
  };
}

/**
 * Overwrites every weight: matrices N(0,1)/√fan_in, biases 0.05·N(0,1), norm scales 1 + 0.1·N(0,1), as the fixtures
 * do.
 */
export function randomizeWeights(model: NestedUNet, seed = 1): void {
  const rng = new Rng(seed);
  const norms = new Set(model.specs.filter((s) => s.init.kind === 'ones').map((s) => s.name.replace(/\.weight$/, '')));
  const values = new Map<string, Float32Array>();
  for (const spec of model.specs) {
    const out = new Float32Array(sizeOf(spec.shape));
    const isNorm = norms.has(spec.name.replace(/\.(weight|bias)$/, ''));
    if (spec.init.kind === 'values') continue; // fixed buffers (rotary frequencies) keep their values
    const fanIn =
      spec.layout === 'conv2d'
        ? spec.shape[0] * spec.shape[1] * spec.shape[2]
        : spec.layout === 'conv1d'
          ? spec.shape[0] * spec.shape[1]
          : spec.shape[spec.layout === 'table' ? 1 : 0];
    for (let i = 0; i < out.length; i++) {
      const z = rng.normal();
      if (isNorm) out[i] = spec.name.endsWith('.weight') ? 1 + 0.1 * z : 0.1 * z;
      else if (spec.layout === 'vector') out[i] = 0.05 * z;
      else out[i] = z / Math.sqrt(fanIn);
    }
    values.set(spec.name, out);
  }
  model.setWeights(values);
}

/** Random NHWC images for every level of a model, `batches[i]` samples at level i (a clip's frames as rows). */
export function randomImages(model: NestedUNet, batches: number[], seed = 2): tf.Tensor4D[] {
  const rng = new Rng(seed);
  return model.config.levels.map(
    (level, i) =>
      rng.normalTensor([
        batches[i] * level.frames,
        level.resolution,
        level.resolution,
        model.config.imageChannels,
      ]) as tf.Tensor4D,
  );
}

/**
 * A video nest: a temporal level over 4 frames of 8 px (stages [32, 32, 16], temporal attention
 * on the first two) around an 8 px text-conditioned image level; `outer` adds a spatial level of
 * 16 px per frame around it.
 */
export function tinyVideo(options: { rotary?: boolean; outer?: boolean } = {}): NestedUNetConfig {
  const temporal: UNetLevelConfig = {
    resolution: 8,
    temporal: true,
    channels: [32, 32, 16],
    resBlocks: [1, 1, 1],
    temporalAttentionLayers: [1, 1, 0],
    rotaryPositions: options.rotary,
    groups: 8,
    timeEmbedDim: 32,
    inputStdNormalisation: true,
    inner: {
      resolution: 8,
      channels: [16, 32],
      resBlocks: [1, 1],
      attentionLayers: [0, 1],
      groups: 8,
      timeEmbedDim: 32,
    },
  };
  const text = { featureDim: 12, projDim: 32, headLayers: 0, maskedCrossAttention: false };
  if (!options.outer) return { ...temporal, text };
  return { resolution: 16, channels: [8, 16], resBlocks: [1, 1], groups: 4, timeEmbedDim: 32, inner: temporal, text };
}

export function randomText(
  batch: number,
  tokens: number,
  width: number,
  seed = 3,
): { tokens: tf.Tensor3D; mask: tf.Tensor2D } {
  const rng = new Rng(seed);
  const mask = new Float32Array(batch * tokens);
  // sample b has b padded tokens
  for (let b = 0; b < batch; b++) for (let t = 0; t < tokens; t++) mask[b * tokens + t] = t < tokens - b ? 1 : 0;
  return { tokens: rng.normalTensor([batch, tokens, width]) as tf.Tensor3D, mask: tf.tensor2d(mask, [batch, tokens]) };
}

export function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  if (x.length !== y.length) throw new Error('size mismatch');
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}
