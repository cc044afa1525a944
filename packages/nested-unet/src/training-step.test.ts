import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { NestedUNet } from './nested-unet.js';
import { randomImages, randomText, randomizeWeights, tinyNested } from './test-models.js';

describe.each(['cpu', 'wasm'] as const)('training steps on %s', (backend) => {
  beforeAll(async () => {
    await initBackend({ backend, quiet: true });
  });

  it('20 Adam steps on a nested model keep the tensor count flat and lower the loss', () => {
    const model = new NestedUNet(tinyNested());
    randomizeWeights(model, 3);
    const x = randomImages(model, [2, 2]);
    const targets = randomImages(model, [2, 2], 9);
    const text = randomText(2, 5, 12);
    const optimizer = tf.train.adam(1e-3, 0.9, 0.99, 1e-8);
    const vars = [...model.params.values()];
    const step = () => {
      const loss = optimizer.minimize(
        () => {
          const outs = model.forward({ x, times: [100, 600], ...text }, { training: true });
          return tf.addN(outs.map((o, i) => tf.mean(tf.square(tf.sub(o, targets[i]))))) as tf.Scalar;
        },
        true,
        vars,
      )!;
      const value = loss.dataSync()[0];
      loss.dispose();
      return value;
    };
    const first = step();
    step(); // the optimizer allocates its moment estimates during the first steps
    const before = tf.memory().numTensors;
    let last = first;
    for (let i = 0; i < 18; i++) last = step();
    expect(tf.memory().numTensors).toBe(before);
    expect(Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first);
    optimizer.dispose();
    model.dispose();
  }, 120_000);
});

describe('class-label conditioning', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'cpu', quiet: true });
  });

  it('adds a learned row per label (plus the null label) to every level, and trains it', () => {
    const config = tinyNested({ text: undefined, labels: { numClasses: 5 } });
    const model = new NestedUNet(config);
    randomizeWeights(model, 4);
    expect(model.params.get('inner_unet.label_emb.weight')!.shape).toEqual([6, 32]);
    const x = randomImages(model, [2, 2]);
    const [a, b, nul] = [
      [0, 1],
      [3, 1],
      [5, 5],
    ].map((labels) => model.forward({ x, times: [50, 50], labels: tf.tensor1d(labels, 'int32') }));
    // Sample 0 changed its label, sample 1 did not.
    const diff = (p: tf.Tensor, q: tf.Tensor, i: number) =>
      tf.max(tf.abs(tf.sub(tf.slice(p, i, 1), tf.slice(q, i, 1)))).dataSync()[0];
    expect(diff(a[0], b[0], 0)).toBeGreaterThan(1e-4);
    expect(diff(a[0], b[0], 1)).toBe(0);
    expect(diff(a[1], nul[1], 0)).toBeGreaterThan(1e-4);
    const grad = tf.grad((table: tf.Tensor) => {
      const P = (name: string) => (name === 'inner_unet.label_emb.weight' ? table : model.params.get(name)!);
      return tf.sum(model.forward({ x, times: [50, 50], labels: tf.tensor1d([2, 2], 'int32') }, { params: P })[0]);
    })(model.params.get('inner_unet.label_emb.weight')!);
    const rows = tf.sum(tf.abs(grad), 1).dataSync();
    expect(rows[2]).toBeGreaterThan(0);
    expect([rows[0], rows[1], rows[3], rows[4], rows[5]]).toEqual([0, 0, 0, 0, 0]);
    model.dispose();
  });

  it('requires labels when class-conditional', () => {
    const model = new NestedUNet(tinyNested({ text: undefined, labels: { numClasses: 5 } }));
    expect(() => model.forward({ x: randomImages(model, [1, 1]), times: [1] })).toThrow(/class-conditional/);
    model.dispose();
  });
});
