import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PredictionType } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { noisyImage, velocity } from './forward-process.js';
import { lossTarget, predictEps, predictV, predictX0, predictedTarget } from './parameterization.js';
import { leakedBy, maxAbsDiff, referenceElement, rngFor, uniformF32 } from './test-helpers.js';
import type { LossTarget } from './types.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const shape: [number, number, number, number] = [4, 3, 3, 3];
const per = 27;
const kinds = ['eps', 'x0', 'v'] as const;

/** x0 uniform in [−1, 1], ε roughly N(0,1)-sized, γ in [0.05, 0.95] (σ, α ≥ 0.22). */
function sample(seed: number) {
  const rng = rngFor(seed);
  const x0 = tf.tensor4d(uniformF32(rng, 4 * per), shape);
  const eps = tf.tensor4d(rng.normals(4 * per), shape);
  const gamma = tf.tensor1d(uniformF32(rng, 4, 0.05, 0.95));
  const xt = noisyImage(x0, eps, gamma);
  const v = velocity(x0, eps, gamma);
  return { x0, eps, gamma, xt, v, truth: { x0, eps, v } as Record<PredictionType, tf.Tensor4D> };
}

describe('prediction conversions', () => {
  // Round trips divide by α or σ ≥ 0.22 once or twice: float32 rounding of values of order 3
  // (|ε| ≤ ~4) grows to ≲ 20 ulps, so 2e-5 absolute.
  it.each(kinds)('the true %s output gives back x0, ε and v', (prediction) => {
    const s = sample(10);
    const output = s.truth[prediction];
    const x0 = predictX0(output, s.xt, s.gamma, prediction);
    const eps = predictEps(output, s.xt, s.gamma, prediction);
    const v = predictV(output, s.xt, s.gamma, prediction);
    expect(maxAbsDiff(x0.dataSync(), s.x0.dataSync())).toBeLessThanOrEqual(2e-5);
    expect(maxAbsDiff(eps.dataSync(), s.eps.dataSync())).toBeLessThanOrEqual(2e-5);
    expect(maxAbsDiff(v.dataSync(), s.v.dataSync())).toBeLessThanOrEqual(2e-5);
    tf.dispose([x0, eps, v, s.x0, s.eps, s.gamma, s.xt, s.v]);
  });

  it.each(kinds.flatMap((p) => kinds.map((t) => [p, t] as const)))(
    '%s output → %s target matches the float64 closed forms for any output',
    (prediction, target) => {
      const s = sample(11);
      const rng = rngFor(12);
      const outValues = uniformF32(rng, 4 * per, -2, 2);
      const output = tf.tensor4d(outValues, shape);
      const ours = predictedTarget(output, s.xt, s.gamma, prediction, target).dataSync();
      const [x0, eps, g, xt] = [s.x0.dataSync(), s.eps.dataSync(), s.gamma.dataSync(), s.xt.dataSync()];
      const ref = Array.from(outValues, (o, i) => {
        // The tensor code starts from the float32 x_t (within 1e-6 of the float64 one); so does the reference.
        const r = referenceElement(prediction, o, x0[i], eps[i], g[Math.floor(i / per)], xt[i]);
        return target === 'x0' ? r.x0Hat : target === 'eps' ? r.epsHat : r.vHat;
      });
      // Outputs up to 2 and two divisions by ≥ 0.22: ≤ 5e-5 absolute in float32.
      expect(maxAbsDiff(ours, ref)).toBeLessThanOrEqual(5e-5);
      tf.dispose([output, s.x0, s.eps, s.gamma, s.xt, s.v]);
    },
  );

  it('v-prediction with the ε loss: (ε̂ − ε)² = γ·(v̂ − v)² per element (the official identity)', () => {
    const s = sample(13);
    const vHat = tf.tensor4d(uniformF32(rngFor(14), 4 * per, -2, 2), shape);
    const epsErr = tf.square(tf.sub(predictEps(vHat, s.xt, s.gamma, 'v'), s.eps));
    const vErr = tf.mul(tf.reshape(s.gamma, [-1, 1, 1, 1]), tf.square(tf.sub(vHat, s.v)));
    // Squared errors up to ~20 computed through a division by σ ≥ 0.22: ≤ 1e-4 absolute in float32.
    expect(maxAbsDiff(epsErr.dataSync(), vErr.dataSync())).toBeLessThanOrEqual(1e-4);
    expect(Math.max(...vErr.dataSync())).toBeGreaterThan(0.5); // a real error, not a trivial zero
    tf.dispose([s.x0, s.eps, s.gamma, s.xt, s.v, vHat, epsErr, vErr]);
  });

  it('the prediction itself when the target is the predicted quantity (bit-exact)', () => {
    const s = sample(15);
    for (const kind of kinds) {
      const out = predictedTarget(s.truth[kind], s.xt, s.gamma, kind, kind);
      expect(Array.from(out.dataSync())).toEqual(Array.from(s.truth[kind].dataSync()));
      out.dispose();
    }
    tf.dispose([s.x0, s.eps, s.gamma, s.xt, s.v]);
  });

  it('lossTarget gives ε, x0 and v', () => {
    const s = sample(16);
    for (const kind of kinds) {
      const t = lossTarget(kind, s.x0, s.eps, s.gamma);
      expect(Array.from(t.dataSync())).toEqual(Array.from(s.truth[kind].dataSync()));
      t.dispose();
    }
    tf.dispose([s.x0, s.eps, s.gamma, s.xt, s.v]);
  });

  it('rejects unknown prediction types and targets', () => {
    const s = sample(17);
    expect(() => predictX0(s.x0, s.xt, s.gamma, 'score' as PredictionType)).toThrow(/unknown prediction type 'score'/);
    expect(() => predictedTarget(s.x0, s.xt, s.gamma, 'v', 'noise' as LossTarget)).toThrow(
      /unknown loss target 'noise'/,
    );
    expect(() => lossTarget('noise' as LossTarget, s.x0, s.eps, s.gamma)).toThrow(/unknown loss target/);
    tf.dispose([s.x0, s.eps, s.gamma, s.xt, s.v]);
  });

  it('leaks no tensors', () => {
    const s = sample(18);
    expect(
      leakedBy(() => {
        for (const p of kinds) for (const t of kinds) predictedTarget(s.truth[p], s.xt, s.gamma, p, t).dispose();
        for (const t of kinds) lossTarget(t, s.x0, s.eps, s.gamma).dispose();
        expect(() => predictX0(s.x0, s.xt, s.gamma, 'score' as PredictionType)).toThrow();
      }),
    ).toBe(0);
    tf.dispose([s.x0, s.eps, s.gamma, s.xt, s.v]);
  });
});
