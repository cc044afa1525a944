import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { NestedUNet, countParams } from './nested-unet.js';
import { maxDiff, randomImages, randomText, randomizeWeights, tinyNested } from './test-models.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

describe('NestedUNet', () => {
  it('starts as the official code does: every output exactly zero (zero-initialised heads and adapters)', () => {
    const model = new NestedUNet(tinyNested(), { seed: 5 });
    const text = randomText(2, 5, 12);
    const outs = model.forward({ x: randomImages(model, [2, 2]), times: [3, 700], ...text });
    expect(outs.map((o) => o.shape)).toEqual([
      [2, 16, 16, 3],
      [2, 8, 8, 3],
    ]);
    for (const o of outs) expect(Math.max(...Array.from(o.dataSync(), Math.abs))).toBe(0);
    model.dispose();
  });

  it('counts parameters per level without allocating, and the counts add up to the allocated model', () => {
    const config = tinyNested();
    const counts = countParams(config);
    const model = new NestedUNet(config);
    expect(counts.total).toBe(model.paramCount);
    expect(counts.levels.map((l) => l.resolution)).toEqual([16, 8]);
    expect(counts.levels[0].params + counts.levels[1].params).toBe(counts.total);
    model.dispose();
  });

  describe('with random weights', () => {
    let model: NestedUNet;
    beforeAll(() => {
      model = new NestedUNet(tinyNested());
      randomizeWeights(model, 11);
    });
    afterAll(() => model.dispose());

    it(
      'the inner level is a standalone UNet: same weights without the prefix give the same inner output ' +
        'when the outer feature is absent',
      () => {
        // Mixed batch: level 0 holds 1 sample, the inner level 3; samples 1 and 2 get a zero adapter feature.
        const x = randomImages(model, [1, 3]);
        const text = randomText(3, 5, 12);
        const nested = model.forward({ x, times: [10, 400, 990], ...text });
        const { inner, ...rest } = tinyNested();
        const standalone = new NestedUNet({ ...inner!, text: rest.text });
        const prefix = 'inner_unet.';
        standalone.setWeights(
          new Map(
            [...model.getWeights()].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]),
          ),
        );
        const alone = standalone.forward({ x: [x[1]], times: [10, 400, 990], ...text });
        const extra = (t: tf.Tensor4D) => tf.slice(t, 1, 2);
        // float32, same ops in the same order: equal up to rounding.
        expect(maxDiff(extra(nested[1]), extra(alone[0]))).toBeLessThan(1e-5);
        // The first sample did receive the outer feature, so it differs.
        expect(maxDiff(tf.slice(nested[1], 0, 1), tf.slice(alone[0], 0, 1))).toBeGreaterThan(1e-3);
        standalone.dispose();
      },
    );

    it('mixed-resolution batches: the outer level sees the first b samples, exactly as in a full batch', () => {
      const full = randomImages(model, [3, 3]);
      const text = randomText(3, 5, 12);
      const times = [5, 250, 800];
      const fullOut = model.forward({ x: full, times, ...text });
      const mixed = model.forward({ x: [tf.slice(full[0], 0, 2), full[1]], times, ...text });
      expect(mixed[0].shape).toEqual([2, 16, 16, 3]);
      expect(maxDiff(mixed[0], tf.slice(fullOut[0], 0, 2))).toBeLessThan(1e-5);
      // Inner samples 0–1 got the same adapter feature as in the full batch; sample 2 got zero instead.
      expect(maxDiff(tf.slice(mixed[1], 0, 2), tf.slice(fullOut[1], 0, 2))).toBeLessThan(1e-5);
      expect(maxDiff(tf.slice(mixed[1], 2, 1), tf.slice(fullOut[1], 2, 1))).toBeGreaterThan(1e-3);
    });

    it('rejects inputs that do not fit, naming the level', () => {
      const text = randomText(2, 5, 12);
      const [x0, x1] = randomImages(model, [2, 2]);
      expect(() => model.forward({ x: [x0], times: [1, 2], ...text })).toThrow(/expected 2 images/);
      expect(() => model.forward({ x: [x1, x1], times: [1, 2], ...text })).toThrow(/level 0 input has shape/);
      expect(() => model.forward({ x: [x0, tf.slice(x1, 0, 1)], times: [1], ...text })).toThrow(
        /level 0 holds 2 samples/,
      );
      expect(() => model.forward({ x: [x0, x1], times: [1, 2] })).toThrow(/text-conditioned/);
    });

    it('masked cross-attention ignores padded tokens; the pooled embedding too', () => {
      const x = randomImages(model, [2, 2]);
      const text = randomText(2, 5, 12);
      const a = model.forward({ x, times: [30, 30], ...text });
      // Change only the padded token of sample 1 (its last token).
      const bump = tf.concat([tf.zeros([1, 5, 12]), tf.concat([tf.zeros([1, 4, 12]), tf.fill([1, 1, 12], 3)], 1)], 0);
      const b = model.forward({
        x,
        times: [30, 30],
        tokens: tf.add(text.tokens, bump) as tf.Tensor3D,
        mask: text.mask,
      });
      a.forEach((out, i) => expect(maxDiff(out, b[i])).toBeLessThan(1e-5));
      // Without the mask (the official configs' setting) the same change does move the outputs.
      const unmasked = new NestedUNet(
        tinyNested({ text: { featureDim: 12, projDim: 32, headLayers: 1, maskedCrossAttention: false } }),
      );
      unmasked.setWeights(model.getWeights());
      const c = unmasked.forward({ x, times: [30, 30], ...text });
      const d = unmasked.forward({
        x,
        times: [30, 30],
        tokens: tf.add(text.tokens, bump) as tf.Tensor3D,
        mask: text.mask,
      });
      expect(maxDiff(c[1], d[1])).toBeGreaterThan(1e-3);
      unmasked.dispose();
    });

    it('input std normalisation makes a level blind to the scale of its input', () => {
      const cfg = tinyNested({ inputStdNormalisation: true });
      const m = new NestedUNet(cfg);
      m.setWeights(model.getWeights());
      const x = randomImages(m, [2, 2]);
      const text = randomText(2, 5, 12);
      const a = m.forward({ x, times: [100, 100], ...text });
      const b = m.forward({ x: [tf.mul(x[0], 3) as tf.Tensor4D, x[1]], times: [100, 100], ...text });
      a.forEach((out, i) => expect(maxDiff(out, b[i])).toBeLessThan(1e-4));
      const c = model.forward({ x: [tf.mul(x[0], 3) as tf.Tensor4D, x[1]], times: [100, 100], ...text });
      expect(maxDiff(a[0], c[0])).toBeGreaterThan(1e-3);
      m.dispose();
    });

    it('micro-conditioning clamps `scale` at its default', () => {
      const x = randomImages(model, [1, 1]);
      const text = randomText(1, 5, 12);
      const at = (v: number) => model.forward({ x, times: [50], ...text, micro: { scale: [v] } });
      const [d, above, below] = [at(16), at(64), at(4)];
      expect(maxDiff(d[0], above[0])).toBe(0);
      expect(maxDiff(d[0], below[0])).toBeGreaterThan(1e-4);
    });

    it('forward leaves no tensor behind', () => {
      const x = randomImages(model, [2, 2]);
      const text = randomText(2, 5, 12);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) tf.dispose(model.forward({ x, times: [1, 2], ...text }));
      expect(tf.memory().numTensors).toBe(before);
    });
  });
});
