import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@matryoshka-ts/core';
import { type ImageDataset, epochOrder } from '@matryoshka-ts/data';
import type { TextEncoder } from '@matryoshka-ts/text-encoders';
import {
  DEGRADATIONS,
  type ProxyClipShape,
  initProxyParams,
  proxyImageEmbed,
  proxyImageFeatures,
  proxySpecs,
  proxyTextEmbed,
} from './proxy-clip.js';

export interface ProxyTrainOptions {
  steps: number;
  batchSize: number;
  lr: number;
  /** Softmax temperature τ of the contrastive loss (CLIP learns it; a fixed one suffices here). */
  temperature: number;
  /** Random translation of up to ± this many pixels (white fill, as the emoji's background). */
  maxShift: number;
  seed: number;
}

export const PROXY_TRAINING: ProxyTrainOptions = {
  steps: 600,
  batchSize: 32,
  lr: 2e-3,
  temperature: 0.1,
  maxShift: 4,
  seed: 0,
};

/** Box blur of radius r (in place, one image of `size`² RGB in [−1, 1]). */
function boxBlur(pixels: Float32Array, offset: number, size: number, r: number): void {
  const src = pixels.slice(offset, offset + size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        let n = 0;
        for (let yy = Math.max(0, y - r); yy <= Math.min(size - 1, y + r); yy++) {
          for (let xx = Math.max(0, x - r); xx <= Math.min(size - 1, x + r); xx++) {
            sum += src[(yy * size + xx) * 3 + c];
            n++;
          }
        }
        pixels[offset + (y * size + x) * 3 + c] = sum / n;
      }
    }
  }
}

/**
 * A third of the images stay clean, a third get a box blur (radius 1–2), a third uniform noise
 * (amplitude 0.1–0.4 in [−1, 1] units); returns the degradation index of each.
 */
function degrade(pixels: Float32Array, n: number, size: number, rng: Rng): number[] {
  const kinds: number[] = [];
  const per = size * size * 3;
  for (let b = 0; b < n; b++) {
    const kind = rng.int(DEGRADATIONS.length);
    kinds.push(kind);
    if (DEGRADATIONS[kind] === 'blur') boxBlur(pixels, b * per, size, 1 + rng.int(2));
    if (DEGRADATIONS[kind] === 'noise') {
      const amplitude = 0.1 + 0.3 * rng.uniform();
      for (let i = b * per; i < (b + 1) * per; i++)
        pixels[i] = Math.max(-1, Math.min(1, pixels[i] + amplitude * (2 * rng.uniform() - 1)));
    }
  }
  return kinds;
}

/** One batch: shifted, degraded images in [−1, 1], their captions and degradation indices. */
function batchOf(
  dataset: ImageDataset,
  indices: ArrayLike<number>,
  maxShift: number,
  rng: Rng,
): { x: tf.Tensor4D; captions: string[]; kinds: number[] } {
  const r = dataset.resolution;
  const n = indices.length;
  const pixels = new Float32Array(n * r * r * 3).fill(1);
  const captions: string[] = [];
  for (let b = 0; b < n; b++) {
    const example = dataset.get(indices[b]);
    captions.push(example.caption);
    const dx = rng.int(2 * maxShift + 1) - maxShift;
    const dy = rng.int(2 * maxShift + 1) - maxShift;
    for (let y = 0; y < r; y++) {
      const sy = y - dy;
      if (sy < 0 || sy >= r) continue;
      for (let x = 0; x < r; x++) {
        const sx = x - dx;
        if (sx < 0 || sx >= r) continue;
        for (let c = 0; c < 3; c++)
          pixels[((b * r + y) * r + x) * 3 + c] = example.image[(sy * r + sx) * 3 + c] / 127.5 - 1;
      }
    }
  }
  const kinds = degrade(pixels, n, r, rng);
  return { x: tf.tensor4d(pixels, [n, r, r, 3]), captions, kinds };
}

/**
 * CLIP's symmetric contrastive loss: logits = I·Tᵀ/τ over unit embeddings, cross-entropy of each
 * image against its caption and each caption against its image.
 */
export function contrastiveLoss(image: tf.Tensor2D, text: tf.Tensor2D, temperature: number): tf.Scalar {
  return tf.tidy(() => {
    const logits = tf.div(tf.matMul(image, text, false, true), temperature);
    const n = image.shape[0];
    const eye = tf.oneHot(tf.range(0, n, 1, 'int32'), n);
    const rows = tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(logits, 1), eye), 1)));
    const cols = tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(tf.transpose(logits), 1), eye), 1)));
    return tf.div(tf.add(rows, cols), 2) as tf.Scalar;
  });
}

/**
 * Trains the proxy CLIP on `dataset` (already at `shape.size`) with Adam on the contrastive loss
 * plus the degradation classifier's cross-entropy; returns the weights and the loss of each step.
 * Deterministic for a seed on one backend.
 */
export function trainProxyClip(
  dataset: ImageDataset,
  encoder: TextEncoder,
  shape: ProxyClipShape,
  options: ProxyTrainOptions,
  onStep?: (step: number, loss: number) => void,
): { weights: Map<string, Float32Array>; losses: number[] } {
  if (dataset.resolution !== shape.size)
    throw new Error(`proxy: data set is ${dataset.resolution} px, the proxy takes ${shape.size} px`);
  const rng = new Rng(options.seed);
  const init = initProxyParams(shape, () => rng.normal());
  const vars = new Map(
    proxySpecs(shape).map(([name, s]) => [name, tf.variable(tf.tensor(init.get(name)!, s), true, `proxy/${name}`)]),
  );
  const optimizer = tf.train.adam(options.lr);
  const losses: number[] = [];
  let epoch = 0;
  let cursor = 0;
  let order = epochOrder(dataset.size, options.seed, epoch);
  for (let step = 1; step <= options.steps; step++) {
    const indices: number[] = [];
    while (indices.length < options.batchSize) {
      if (cursor === dataset.size) {
        order = epochOrder(dataset.size, options.seed, ++epoch);
        cursor = 0;
      }
      indices.push(order[cursor++]);
    }
    const { x, captions, kinds } = batchOf(dataset, indices, options.maxShift, rng);
    const target = tf.oneHot(tf.tensor1d(kinds, 'int32'), DEGRADATIONS.length);
    const cost = optimizer.minimize(
      () => {
        const features = proxyImageFeatures(vars, x, shape);
        const matching = contrastiveLoss(
          proxyImageEmbed(vars, features, shape),
          proxyTextEmbed(vars, encoder, captions),
          options.temperature,
        );
        const logits = tf.add(tf.matMul(features, vars.get('image.degradation.w')!), vars.get('image.degradation.b')!);
        const degradation = tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(logits, 1), target), 1)));
        return tf.add(matching, degradation) as tf.Scalar;
      },
      true,
      [...vars.values()],
    );
    const loss = cost!.dataSync()[0];
    tf.dispose([cost!, x, target]);
    losses.push(loss);
    onStep?.(step, loss);
  }
  const weights = new Map([...vars].map(([name, v]) => [name, v.dataSync() as Float32Array]));
  optimizer.dispose();
  for (const v of vars.values()) v.dispose();
  return { weights, losses };
}
