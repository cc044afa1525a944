/**
 * Test-only helpers (imported by the *.test.ts files; not exported from the package): seeded
 * float32 data and a float64 plain-JS reference of the loss, written from the formulas and
 * independently of the tensor code under test.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@matryoshka-ts/core';
import type { PredictionType } from '@matryoshka-ts/core';
import type { LossTarget } from './types.js';

/** n values uniform in [lo, hi), each exactly representable in float32. */
export function uniformF32(rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng.uniform();
  return out;
}

/** A seeded generator for a test. */
export function rngFor(seed: number): Rng {
  return new Rng(seed);
}

/** Runs `body` and returns how many tensors it left behind. */
export function leakedBy(body: () => void): number {
  const before = tf.memory().numTensors;
  body();
  return tf.memory().numTensors - before;
}

/**
 * One level of a float64 reference batch: flat NHWC values, per-sample γ, the network output of the first `seen`
 * samples.
 */
export interface ReferenceLevel {
  /** [B, H, W, C] */
  shape: [number, number, number, number];
  x0: Float32Array;
  eps: Float32Array;
  gamma: Float32Array;
  output: Float32Array | Float64Array;
  seen: number;
  fraction: number;
  weight: number;
}

/**
 * x_t, x̂0, ε̂, v̂ and the true v of one element in float64 from the closed forms, for a network
 * output `o`; `xtGiven` replaces x_t = √γ·x0 + √(1−γ)·ε (e.g. by the float32 value a tensor holds).
 */
export function referenceElement(
  prediction: PredictionType,
  o: number,
  x0: number,
  e: number,
  g: number,
  xtGiven?: number,
) {
  const a = Math.sqrt(g);
  const s = Math.sqrt(1 - g);
  const xt = xtGiven ?? a * x0 + s * e;
  const x0Hat = prediction === 'x0' ? o : prediction === 'eps' ? (xt - s * o) / a : a * xt - s * o;
  const epsHat = prediction === 'eps' ? o : (xt - a * x0Hat) / s;
  const vHat = prediction === 'v' ? o : a * epsHat - s * x0Hat;
  return { xt, x0Hat, epsHat, vHat, v: a * e - s * x0 };
}

/** The multi-resolution loss in float64: per-level mse of the seen samples, per-sample totals and the batch loss. */
export function referenceLoss(
  levels: readonly ReferenceLevel[],
  prediction: PredictionType,
  target: LossTarget,
  sampleWeights?: readonly number[],
): { mse: number[][]; perSample: number[]; loss: number } {
  const batch = levels[0].shape[0];
  const perSample = new Array<number>(batch).fill(0);
  const mse = levels.map((level) => {
    const per = level.x0.length / batch;
    const out: number[] = [];
    for (let b = 0; b < level.seen; b++) {
      let sum = 0;
      for (let k = 0; k < per; k++) {
        const i = b * per + k;
        const r = referenceElement(prediction, level.output[i], level.x0[i], level.eps[i], level.gamma[b]);
        const [p, t] =
          target === 'x0' ? [r.x0Hat, level.x0[i]] : target === 'eps' ? [r.epsHat, level.eps[i]] : [r.vHat, r.v];
        sum += (p - t) ** 2;
      }
      out.push(sum / per);
      perSample[b] += (level.weight * (sum / per)) / level.fraction;
    }
    return out;
  });
  let loss: number;
  if (sampleWeights) {
    let num = 0;
    let den = 0;
    perSample.forEach((l, b) => {
      num += sampleWeights[b] * l;
      den += sampleWeights[b];
    });
    loss = num / den;
  } else loss = perSample.reduce((s, l) => s + l, 0) / batch;
  return { mse, perSample, loss };
}

export { maxAbs, maxAbsDiff } from '@matryoshka-ts/test-utils';
