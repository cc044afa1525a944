import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { Rng } from '@matryoshka-ts/core';
import { NestedUNet } from '@matryoshka-ts/nested-unet';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders';
import { TRAIN_PRESETS } from './train-presets.js';
import { levelSchedulesOf, modelConfigOf, parseTrainConfig } from './config.js';
import { TrainStep, type TrainStepOptions } from './train-step.js';

// The micro preset's model (8 → 4 px) on the deterministic pure-JS cpu backend.
const config = parseTrainConfig({ ...TRAIN_PRESETS.micro, backend: 'cpu' });
const schedules = levelSchedulesOf(config);
let text: { tokens: tf.Tensor3D; mask: tf.Tensor2D };
let images: tf.Tensor4D;
beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
  text = new HashedWordEncoder(config.conditioning.encoder).encode(['grinning face', 'face with tears of joy']);
  images = tf.tidy(() => tf.clipByValue(new Rng(5).normalTensor([2, 8, 8, 3]), -1, 1) as tf.Tensor4D);
});
afterAll(() => tf.dispose([images, text.tokens, text.mask]));

const options = (over: Partial<TrainStepOptions> = {}): TrainStepOptions => ({
  loss: { prediction: 'v', target: 'eps' },
  optimizer: { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, warmupSteps: 0, clipNorm: 0 },
  ...over,
});
const values = (m: Map<string, tf.Tensor>) => new Map([...m].map(([k, v]) => [k, Float32Array.from(v.dataSync())]));

describe('TrainStep', () => {
  it("Adam's first update is lr·g/(|g| + ε) for the gradient of the same draw (closed form)", async () => {
    const model = new NestedUNet(modelConfigOf(config), { seed: 3 });
    const step = new TrainStep(model, schedules, options());
    const before = values(model.params);
    // The same rng state gives the same times and noise: first the gradients alone, then the step.
    const grads = await step.computeGradients(images, text, new Rng(11));
    const g = values(grads.grads);
    tf.dispose([...grads.grads.values()]);
    const result = await step.run(images, text, new Rng(11));
    expect(result.loss).toBe(grads.loss);
    expect(result.mse).toEqual(grads.mse);
    expect(result.lr).toBe(1e-3);
    expect(result.skipped).toBeUndefined();
    // ‖g‖ from its definition, in float64 (the step sums float32 squares: 1e-5 relative).
    let sq = 0;
    for (const v of g.values()) for (const x of v) sq += x * x;
    expect(result.gradNorm).toBeCloseTo(Math.sqrt(sq), 5);
    let worst = 0;
    for (const [name, p] of values(model.params)) {
      const p0 = before.get(name)!;
      const gi = g.get(name)!;
      // m̂ = g and v̂ = g² after one step: Δp = −lr·g/(|g| + ε). float32 rounding of p (|p| ≤ ~1): 1e-7 absolute.
      for (let i = 0; i < p.length; i++)
        worst = Math.max(worst, Math.abs(p[i] - p0[i] + (1e-3 * gi[i]) / (Math.abs(gi[i]) + 1e-8)));
    }
    expect(worst).toBeLessThan(2e-7);
    step.dispose();
    model.dispose();
  });

  it('moves the EMA by d·ema + (1 − d)·p and clips the gradient to clipNorm', async () => {
    const model = new NestedUNet(modelConfigOf(config), { seed: 3 });
    const step = new TrainStep(
      model,
      schedules,
      options({ ema: { decay: 0.9, warmup: false }, optimizer: { ...options().optimizer, clipNorm: 1e-3 } }),
    );
    const p0 = values(model.params);
    const result = await step.run(images, text, new Rng(11));
    // so clipping happened (Adam's first step is scale-free, the EMA is not affected)
    expect(result.gradNorm).toBeGreaterThan(1e-3);
    expect(step.emaUpdates).toBe(1);
    const p1 = values(model.params);
    for (const [name, e] of values(step.ema!)) {
      const expected = p0.get(name)!.map((x, i) => 0.9 * x + 0.1 * p1.get(name)![i]);
      for (let i = 0; i < e.length; i++) expect(Math.abs(e[i] - expected[i])).toBeLessThan(1e-6);
    }
    step.dispose();
    model.dispose();
  });

  it('skips a non-finite loss: weights, Adam and EMA unchanged, and the gradients freed', async () => {
    const model = new NestedUNet(modelConfigOf(config), { seed: 3 });
    const step = new TrainStep(model, schedules, options({ ema: { decay: 0.9, warmup: false } }));
    const before = values(model.params);
    const bad = tf.fill([2, 8, 8, 3], Number.NaN) as tf.Tensor4D;
    const live = tf.memory().numTensors;
    const result = await step.run(bad, text, new Rng(1));
    expect(tf.memory().numTensors).toBe(live);
    expect(result.skipped).toBe('non-finite loss');
    expect(step.adam.step).toBe(0);
    expect(step.emaUpdates).toBe(0);
    expect(values(model.params)).toEqual(before);
    expect(values(step.ema!)).toEqual(before);
    bad.dispose();
    step.dispose();
    model.dispose();
  });

  it('keeps the number of live tensors flat across steps, and downsamples larger images to level 0', async () => {
    const model = new NestedUNet(modelConfigOf(config), { seed: 3 });
    const step = new TrainStep(
      model,
      schedules,
      options({ ema: { decay: 0.99, warmup: true }, loss: { prediction: 'v', target: 'eps', mixedRatio: [1, 2] } }),
    );
    const big = tf.tidy(() => tf.image.resizeNearestNeighbor(images, [16, 16]) as tf.Tensor4D);
    const rng = new Rng(2);
    await step.run(big, text, rng); // Adam's and the EMA's state are made here
    const live = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) expect(Number.isFinite((await step.run(big, text, rng)).loss)).toBe(true);
    expect(tf.memory().numTensors).toBe(live);
    big.dispose();
    step.dispose();
    model.dispose();
  });

  it('min-SNR-γ: a γ above every SNR changes nothing; a small one lowers the loss; no tensors left', async () => {
    const model = new NestedUNet(modelConfigOf(config), { seed: 3 });
    const loss = async (minSnrGamma?: number) => {
      const step = new TrainStep(
        model,
        schedules,
        options({ loss: { prediction: 'v', target: 'eps', mixedRatio: [1, 2], minSnrGamma } }),
      );
      const live = tf.memory().numTensors;
      const grads = await step.computeGradients(images, text, new Rng(11)); // the same times and noise each time
      tf.dispose([...grads.grads.values()]);
      expect(tf.memory().numTensors).toBe(live);
      step.dispose();
      return grads;
    };
    const plain = await loss();
    // eps target: weight min(SNR, γ)/SNR = 1 wherever SNR ≤ γ, and every SNR of the table is below 1e30.
    expect((await loss(1e30)).loss).toBe(plain.loss);
    const small = await loss(1e-3);
    expect(small.mse).toEqual(plain.mse); // the logged errors stay unweighted
    expect(small.loss).toBeLessThan(plain.loss);
    model.dispose();
  });

  it('needs one schedule per level', () => {
    const model = new NestedUNet(modelConfigOf(config), { seed: 3 });
    expect(() => new TrainStep(model, schedules.slice(1), options())).toThrow(/1 schedules for a model of 2 levels/);
    model.dispose();
  });
});
