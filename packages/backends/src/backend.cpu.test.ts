import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { activeBackend, ensureGradients, initBackend } from './backend.js';

describe("initBackend({ backend: 'cpu' })", () => {
  it('nothing is active before the first call', () => {
    expect(activeBackend()).toBeUndefined();
  });

  it('selects the cpu backend and reports it', async () => {
    const info = await initBackend({ backend: 'cpu', quiet: true });
    expect(info.name).toBe('cpu');
    expect(info.description).toMatch(/^cpu/);
    expect(tf.getBackend()).toBe('cpu');
    expect(activeBackend()).toEqual(info);
  });

  it('registers gradients: tf.grad of a sum works afterwards', () => {
    const g = tf.tidy(() =>
      tf
        .grad((x: tf.Tensor) => tf.sum(tf.square(x)))(tf.tensor([1, -2, 3]))
        .dataSync(),
    );
    expect(Array.from(g)).toEqual([2, -4, 6]); // d/dx Σx² = 2x, exact in float32
  });

  it('registers the kernel overrides: conv2d filter gradients work (Σ conv over all-ones)', () => {
    // With x = 1 and L = Σ conv2d(x, w, 'valid'), ∂L/∂w[i,j,c,o] = number of output positions = 3·3.
    const g = tf.tidy(() =>
      tf
        .grad((w: tf.Tensor) => tf.sum(tf.conv2d(tf.ones([1, 5, 5, 2]) as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid')))(
          tf.zeros([3, 3, 2, 4]),
        )
        .dataSync(),
    );
    expect(g.length).toBe(72);
    expect(Array.from(g).every((v) => v === 9)).toBe(true);
  });

  it('ensureGradients is memoised (one promise per process)', () => {
    expect(ensureGradients()).toBe(ensureGradients());
  });
});
