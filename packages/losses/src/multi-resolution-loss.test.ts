import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PredictionType } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { noiseLevels } from './forward-process.js';
import { mixedFractions, samplesPerLevel } from './mixed-resolution.js';
import { type MultiResolutionLossOptions, levelMse, multiResolutionLoss } from './multi-resolution-loss.js';
import {
  type ReferenceLevel,
  leakedBy,
  maxAbs,
  maxAbsDiff,
  referenceLoss,
  rngFor,
  uniformF32,
} from './test-helpers.js';
import type { LossTarget } from './types.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const kinds = ['eps', 'x0', 'v'] as const;

/**
 * A random batch of B samples at levels of the given sizes (C = 2), γ in [0.05, 0.95], outputs for the samples each
 * level sees.
 */
function randomBatch(
  seed: number,
  batch: number,
  sizes: number[],
  options: { mixedRatio?: string; weights?: number[] } = {},
) {
  const rng = rngFor(seed);
  const seen = options.mixedRatio ? samplesPerLevel(options.mixedRatio, batch) : sizes.map(() => batch);
  const fractions = options.mixedRatio ? mixedFractions(options.mixedRatio) : sizes.map(() => 1);
  const ref: ReferenceLevel[] = sizes.map((size, n) => {
    const per = size * size * 2;
    return {
      shape: [batch, size, size, 2],
      x0: uniformF32(rng, batch * per),
      eps: Float32Array.from(rng.normals(batch * per)),
      gamma: uniformF32(rng, batch, 0.05, 0.95),
      output: uniformF32(rng, seen[n] * per, -2, 2),
      seen: seen[n],
      fraction: fractions[n],
      weight: options.weights?.[n] ?? 1,
    };
  });
  const levels = noiseLevels(
    ref.map((l) => tf.tensor4d(l.x0, l.shape)),
    ref.map((l) => tf.tensor4d(l.eps, l.shape)),
    ref.map((l) => tf.tensor1d(l.gamma)),
  );
  const outputs = ref.map((l) =>
    tf.tensor4d(Float32Array.from(l.output), [l.seen, ...l.shape.slice(1)] as [number, number, number, number]),
  );
  return { ref, levels, outputs };
}

function disposeBatch(b: ReturnType<typeof randomBatch>) {
  tf.dispose([b.levels, b.outputs]);
}

// The tensor code works in float32 from the float32 x_t; the float64 reference from the exact
// one. Squared errors of order 1–20 averaged over ≤ 128 elements, with one or two divisions by
// α or σ ≥ 0.22: ≤ 1e-5 relative to the value (≥ 1e-6 absolute).
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1e-1, Math.abs(b));

function expectMatches(result: ReturnType<typeof multiResolutionLoss>, ref: ReturnType<typeof referenceLoss>) {
  result.mse.forEach((m, n) => {
    expect(m.shape).toEqual([ref.mse[n].length]);
    Array.from(m.dataSync()).forEach((v, i) =>
      expect(close(v, ref.mse[n][i]), `mse level ${n} sample ${i}: ${v} vs ${ref.mse[n][i]}`).toBe(true),
    );
  });
  Array.from(result.perSample.dataSync()).forEach((v, i) =>
    expect(close(v, ref.perSample[i]), `sample ${i}: ${v} vs ${ref.perSample[i]}`).toBe(true),
  );
  expect(close(result.loss.dataSync()[0], ref.loss), `loss ${result.loss.dataSync()[0]} vs ${ref.loss}`).toBe(true);
}

describe('multi-resolution loss', () => {
  it.each(kinds.flatMap((p) => kinds.map((t) => [p, t] as const)))(
    '%s prediction, %s target, weights [1, 0.5, 2]: matches float64',
    (prediction, target) => {
      const b = randomBatch(1, 3, [8, 4, 2], { weights: [1, 0.5, 2] });
      const result = multiResolutionLoss(b.outputs, b.levels, { prediction, target, weights: [1, 0.5, 2] });
      expectMatches(result, referenceLoss(b.ref, prediction, target));
      tf.dispose([result, b.levels, b.outputs]);
    },
  );

  it('mixed 2:1 with B = 3: level 0 sees 2 samples and counts w·mse/(2/3); sample 2 only gets level 1', () => {
    const b = randomBatch(2, 3, [4, 2], { mixedRatio: '2:1', weights: [1, 3] });
    const result = multiResolutionLoss(b.outputs, b.levels, {
      prediction: 'v',
      target: 'eps',
      mixedRatio: '2:1',
      weights: [1, 3],
    });
    const ref = referenceLoss(b.ref, 'v', 'eps');
    expectMatches(result, ref);
    expect(close(ref.perSample[0], ref.mse[0][0] * 1.5 + 3 * ref.mse[1][0])).toBe(true);
    expect(close(ref.perSample[2], 3 * ref.mse[1][2])).toBe(true);
    tf.dispose([result, b.levels, b.outputs]);
  });

  it('mixed 1:1:1 with B = 6: levels see [2, 4, 6] samples', () => {
    const b = randomBatch(3, 6, [8, 4, 2], { mixedRatio: '1:1:1' });
    const result = multiResolutionLoss(b.outputs, b.levels, { prediction: 'eps', target: 'v', mixedRatio: [1, 1, 1] });
    expect(result.mse.map((m) => m.shape[0])).toEqual([2, 4, 6]);
    expectMatches(result, referenceLoss(b.ref, 'eps', 'v'));
    tf.dispose([result, b.levels, b.outputs]);
  });

  it('per-sample weights give Σ w·l / Σ w', () => {
    const b = randomBatch(4, 4, [4, 2]);
    const w = [0.5, 2, 1, 4];
    const result = multiResolutionLoss(b.outputs, b.levels, { prediction: 'v', target: 'eps', sampleWeights: w });
    const ref = referenceLoss(b.ref, 'v', 'eps', w);
    expectMatches(result, ref);
    // not the plain mean
    expect(Math.abs(ref.loss - ref.perSample.reduce((s, l) => s + l, 0) / 4)).toBeGreaterThan(1e-3);
    tf.dispose([result, b.levels, b.outputs]);
  });

  it('per-level sample weights scale each level error before the plain batch mean', () => {
    const b = randomBatch(8, 3, [4, 2], { mixedRatio: '2:1', weights: [1, 3] });
    const perLevel = [
      [0.25, 1],
      [1, 0.5, 0.125],
    ];
    const result = multiResolutionLoss(b.outputs, b.levels, {
      prediction: 'v',
      target: 'eps',
      mixedRatio: '2:1',
      weights: [1, 3],
      levelSampleWeights: perLevel,
    });
    // The float64 reference's per-level errors, weighted by hand: Σ_N w_N·u_N,b·mse_N,b/m_N, then the mean.
    const ref = referenceLoss(b.ref, 'v', 'eps');
    const perSample = [0, 1, 2].map(
      (i) => (i < 2 ? (perLevel[0][i] * ref.mse[0][i]) / (2 / 3) : 0) + 3 * perLevel[1][i] * ref.mse[1][i],
    );
    Array.from(result.perSample.dataSync()).forEach((v, i) => expect(close(v, perSample[i]), `sample ${i}`).toBe(true));
    expect(close(result.loss.dataSync()[0], perSample.reduce((a, c) => a + c, 0) / 3)).toBe(true);
    // mse stays the unweighted per-level error (what the run log reports).
    result.mse.forEach((m, n) =>
      Array.from(m.dataSync()).forEach((v, i) => expect(close(v, ref.mse[n][i])).toBe(true)),
    );
    expect(() =>
      multiResolutionLoss(b.outputs, b.levels, {
        prediction: 'v',
        target: 'eps',
        mixedRatio: '2:1',
        levelSampleWeights: [
          [1, 1, 1],
          [1, 1, 1],
        ],
      }),
    ).toThrow(/level 0: 3 sample weights for the 2 samples it sees/);
    tf.dispose([result, b.levels, b.outputs]);
  });

  it('levelMse is the per-sample mean over H, W, C', () => {
    const a = tf.tensor4d([1, 2, 3, 4, 0, 0, 0, 0], [2, 2, 2, 1]);
    const z = tf.zeros([2, 2, 2, 1]) as tf.Tensor4D;
    const m = levelMse(a, z);
    expect(Array.from(m.dataSync())).toEqual([7.5, 0]);
    tf.dispose([a, z, m]);
  });

  // ∂loss/∂output of the float32 tensor code against central differences of the float64
  // reference (step 1e-4: truncation error ~1e-8 relative). float32 backprop through one or two
  // divisions by ≥ 0.22: within 1e-4 of the largest gradient entry.
  it.each([
    ['v', 'eps', 'none'],
    ['v', 'v', '2:1'],
    ['eps', 'x0', '1:2'],
    ['x0', 'eps', 'none'],
    ['x0', 'v', '2:1'],
    ['eps', 'eps', 'none'],
  ] as Array<[PredictionType, LossTarget, string]>)(
    'gradient w.r.t. the %s output (%s target, mixed ratio %s) matches float64 finite differences',
    (prediction, target, ratio) => {
      const mixedRatio = ratio === 'none' ? undefined : ratio;
      const b = randomBatch(5, 3, [4, 2], { mixedRatio, weights: [1, 0.5] });
      const options: MultiResolutionLossOptions = { prediction, target, mixedRatio, weights: [1, 0.5] };
      const grads = tf.grads(
        (...outs: tf.Tensor[]) => multiResolutionLoss(outs as tf.Tensor4D[], b.levels, options).loss,
      )(b.outputs);
      b.ref.forEach((level, n) => {
        const output = Float64Array.from(level.output);
        const at = (i: number, value: number) => {
          output[i] = value;
          const levels = b.ref.map((l, k) => (k === n ? { ...l, output } : l));
          return referenceLoss(levels, prediction, target).loss;
        };
        const h = 1e-4;
        const fd = Array.from(level.output, (o, i) => {
          const d = (at(i, o + h) - at(i, o - h)) / (2 * h);
          output[i] = o;
          return d;
        });
        expect(maxAbs(fd), `level ${n} has a real gradient`).toBeGreaterThan(1e-4);
        expect(maxAbsDiff(grads[n].dataSync(), fd), `level ${n}`).toBeLessThanOrEqual(1e-4 * maxAbs(fd));
      });
      tf.dispose([grads, b.levels, b.outputs]);
    },
  );

  it('rejects outputs that do not fit the levels', () => {
    const b = randomBatch(6, 3, [4, 2]);
    const o: MultiResolutionLossOptions = { prediction: 'v', target: 'eps' };
    expect(() => multiResolutionLoss(b.outputs.slice(1), b.levels, o)).toThrow(/1 outputs for 2 levels/);
    expect(() => multiResolutionLoss(b.outputs, b.levels, { ...o, weights: [1] })).toThrow(
      /1 level weights for 2 levels/,
    );
    expect(() => multiResolutionLoss(b.outputs, b.levels, { ...o, mixedRatio: '2:1' })).toThrow(
      /level 0: output has shape \[3,4,4,2\], expected \[2,4,4,2\]/,
    );
    expect(() => multiResolutionLoss(b.outputs, b.levels, { ...o, mixedRatio: '1:1:1' })).toThrow(
      /3 parts for 2 levels/,
    );
    expect(() => multiResolutionLoss(b.outputs, b.levels, { ...o, sampleWeights: [1, 1] })).toThrow(
      /2 sample weights for 3 samples/,
    );
    expect(() => multiResolutionLoss([b.outputs[1], b.outputs[0]], b.levels, o)).toThrow(/level 0: output has shape/);
    disposeBatch(b);
  });

  it('leaks no tensors, with or without gradients', () => {
    const b = randomBatch(7, 3, [4, 2], { mixedRatio: '2:1' });
    const options: MultiResolutionLossOptions = {
      prediction: 'v',
      target: 'eps',
      mixedRatio: '2:1',
      sampleWeights: [1, 2, 3],
    };
    expect(leakedBy(() => tf.dispose(multiResolutionLoss(b.outputs, b.levels, options)))).toBe(0);
    expect(
      leakedBy(() =>
        tf.dispose(
          tf.grads((...outs: tf.Tensor[]) => multiResolutionLoss(outs as tf.Tensor4D[], b.levels, options).loss)(
            b.outputs,
          ),
        ),
      ),
    ).toBe(0);
    expect(
      leakedBy(() =>
        expect(() => multiResolutionLoss(b.outputs, b.levels, { ...options, mixedRatio: undefined })).toThrow(),
      ),
    ).toBe(0);
    disposeBatch(b);
  });
});
