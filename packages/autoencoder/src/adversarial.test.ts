import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import {
  ADAPTIVE_WEIGHT_EPS,
  ADAPTIVE_WEIGHT_MAX,
  adaptiveWeight,
  adoptWeight,
  discriminatorLoss,
  generatorLoss,
  hingeDiscriminatorLoss,
  vanillaDiscriminatorLoss,
} from './adversarial.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

/** Hand-picked logits as [B=1, 1, 3, 1] maps: on both sides of the hinge margins ±1, and on them. */
const REAL = [2, 0.5, -1];
const FAKE = [-3, 0, 1.5];
const map = (v: number[]) => tf.tensor4d(v, [1, 1, v.length, 1]);
const softplus = (z: number) => Math.log1p(Math.exp(z));
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

/** Runs `f` on the hand-picked maps and returns its value, disposing everything. */
function on(f: (real: tf.Tensor, fake: tf.Tensor) => tf.Tensor, real = REAL, fake = FAKE): number {
  return tf.tidy(() => f(map(real), map(fake)).dataSync()[0]);
}

describe('discriminator losses', () => {
  it('hinge: ½(mean relu(1 − real) + mean relu(1 + fake))', () => {
    // relu(1 − real) = [0, 0.5, 2], relu(1 + fake) = [0, 1, 2.5]: ½(2.5/3 + 3.5/3) = 1.
    expect(on(hingeDiscriminatorLoss)).toBeCloseTo(1, 6);
    // Confident and right on every patch: zero loss.
    expect(on(hingeDiscriminatorLoss, [1, 3, 7], [-1, -2, -9])).toBe(0);
  });

  it('vanilla: ½(mean softplus(−real) + mean softplus(fake)), ln 2 at zero logits, finite at ±40', () => {
    const want = 0.5 * (mean(REAL.map((r) => softplus(-r))) + mean(FAKE.map(softplus)));
    // float32 of O(1) values: 1e-6.
    expect(Math.abs(on(vanillaDiscriminatorLoss) - want)).toBeLessThan(1e-6);
    expect(on(vanillaDiscriminatorLoss, [0, 0], [0, 0])).toBeCloseTo(Math.LN2, 6);
    // softplus(40) = 40 (no overflow of e^40 in float32), softplus(−40) ≈ 4e-18.
    expect(on(vanillaDiscriminatorLoss, [-40], [40])).toBeCloseTo(40, 4);
  });

  it('averages over every patch of every sample', () => {
    const real = tf.tensor4d([1, -1, 0, 2, 0.5, -0.5, 3, -2], [2, 2, 2, 1]);
    const fake = tf.neg(real);
    const hinge = hingeDiscriminatorLoss(real, fake).dataSync()[0];
    const flat = real.dataSync();
    const want = mean(Array.from(flat, (r) => Math.max(0, 1 - r))); // both halves are equal here
    expect(hinge).toBeCloseTo(want, 6);
    tf.dispose([real, fake]);
  });

  it('selects by the config name and rejects others', () => {
    expect(discriminatorLoss('hinge')).toBe(hingeDiscriminatorLoss);
    expect(discriminatorLoss('vanilla')).toBe(vanillaDiscriminatorLoss);
    expect(() => discriminatorLoss('wgan' as 'hinge')).toThrow(/unknown discriminator loss/);
  });

  it('hinge gradients are −½/N on real logits inside the margin and +½/N on fake ones', () => {
    const [gReal, gFake] = tf.grads((r: tf.Tensor, f: tf.Tensor) => hingeDiscriminatorLoss(r, f))([
      map(REAL),
      map(FAKE),
    ]);
    // real 2 is past the margin (0); 0.5 and −1 are inside (−1/6). fake −3 is past it; 0 and 1.5 inside.
    expect(Array.from(gReal.dataSync(), (v) => v + 0)).toEqual([0, -1 / 6, -1 / 6].map(Math.fround)); // −0 → 0
    expect(Array.from(gFake.dataSync())).toEqual([0, 1 / 6, 1 / 6].map(Math.fround));
    tf.dispose([gReal, gFake]);
  });
});

describe('generator loss', () => {
  it('is −mean(D(x̂)) with gradient −1/N per patch', () => {
    expect(on((_, fake) => generatorLoss(fake))).toBeCloseTo(-mean(FAKE), 6);
    const g = tf.grad((f: tf.Tensor) => generatorLoss(f))(map(FAKE));
    expect(Array.from(g.dataSync())).toEqual([-1 / 3, -1 / 3, -1 / 3].map(Math.fround));
    g.dispose();
  });
});

describe('adoptWeight', () => {
  it('is 0 before disc_start and the weight from disc_start on (global_step < threshold)', () => {
    // CompVis's kl-f8 config: disc_start 50001.
    expect(adoptWeight(1, 0, 50001)).toBe(0);
    expect(adoptWeight(1, 50000, 50001)).toBe(0);
    expect(adoptWeight(1, 50001, 50001)).toBe(1);
    expect(adoptWeight(0.5, 1e6, 50001)).toBe(0.5);
    // Default threshold 0: on from the start; a custom `value` replaces 0.
    expect(adoptWeight(0.75, 0)).toBe(0.75);
    expect(adoptWeight(1, 9, 10, 0.25)).toBe(0.25);
  });
});

describe('adaptiveWeight', () => {
  const t = (v: number[]) => tf.tensor(v);

  it('is ‖∇nll‖ / (‖∇g‖ + 1e-4) · disc_weight', () => {
    const nll = t([3, 4]); // ‖·‖ = 5
    const g = t([0, -2, 0]); // ‖·‖ = 2
    expect(adaptiveWeight(nll, g)).toBeCloseTo(5 / (2 + ADAPTIVE_WEIGHT_EPS), 10);
    expect(adaptiveWeight(nll, g, 0.5)).toBeCloseTo((0.5 * 5) / (2 + ADAPTIVE_WEIGHT_EPS), 10);
    // Frobenius norm over any shape: a [2, 2] gradient of 1s has norm 2.
    const square = tf.ones([2, 2]);
    expect(adaptiveWeight(square, g)).toBeCloseTo(2 / (2 + ADAPTIVE_WEIGHT_EPS), 10);
    tf.dispose([nll, g, square]);
  });

  it('clamps to [0, 1e4] before the disc_weight factor', () => {
    const nll = t([3, 4]);
    const zero = t([0, 0]);
    // 5 / 1e-4 = 5e4 → 1e4; disc_weight scales the clamped value.
    expect(adaptiveWeight(nll, zero)).toBe(ADAPTIVE_WEIGHT_MAX);
    expect(adaptiveWeight(nll, zero, 0.1)).toBeCloseTo(1000, 9);
    // Just under the clamp: ‖∇g‖ such that the ratio is 5000.
    const g = t([5 / 5000 - ADAPTIVE_WEIGHT_EPS]);
    expect(adaptiveWeight(nll, g)).toBeCloseTo(5000, 1);
    expect(adaptiveWeight(zero, nll)).toBe(0);
    tf.dispose([nll, zero, g]);
  });

  it('takes the two losses’ gradients w.r.t. the last layer weight (a linear last layer, closed form)', () => {
    // y = W·a; nll = ½‖y − target‖², g = −mean(y) ⇒ ∇nll = (W·a − target)·aᵀ, ∇g = −(1/2)·1·aᵀ.
    const a = tf.tensor2d([[1], [2]]);
    const target = tf.tensor2d([[0], [1]]);
    const w = tf.tensor2d([
      [0.5, -1],
      [2, 0.25],
    ]);
    const y = (v: tf.Tensor) => tf.matMul(v as tf.Tensor2D, a);
    const nllGrad = tf.grad((v) => tf.mul(0.5, tf.sum(tf.square(tf.sub(y(v), target)))))(w);
    const gGrad = tf.grad((v) => generatorLoss(y(v)))(w);
    // W·a = [−1.5, 2.5]; residual [−1.5, 1.5]; ‖∇nll‖ = ‖residual‖·‖a‖ = 1.5√2·√5; ‖∇g‖ = ½·√2·√5.
    const want = (1.5 * Math.sqrt(10)) / (0.5 * Math.sqrt(10) + ADAPTIVE_WEIGHT_EPS);
    expect(adaptiveWeight(nllGrad, gGrad)).toBeCloseTo(want, 5);
    tf.dispose([a, target, w, nllGrad, gGrad]);
  });
});

describe('memory', () => {
  it('leaks no tensors', () => {
    const real = map(REAL);
    const fake = map(FAKE);
    const start = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.dispose([hingeDiscriminatorLoss(real, fake), vanillaDiscriminatorLoss(real, fake), generatorLoss(fake)]);
      adaptiveWeight(real, fake, 0.5);
    }
    expect(tf.memory().numTensors).toBe(start);
    tf.dispose([real, fake]);
  });
});
