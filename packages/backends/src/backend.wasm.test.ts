import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { activeBackend, initBackend } from './backend.js';

describe("initBackend({ backend: 'wasm' })", () => {
  it('selects the wasm backend and reports it', async () => {
    const info = await initBackend({ backend: 'wasm', quiet: true });
    expect(info.name).toBe('wasm');
    expect(info.description).toMatch(/^wasm/);
    expect(tf.getBackend()).toBe('wasm');
    expect(activeBackend()).toEqual(info);
  });

  it('registers gradients: tf.grad of a sum works afterwards', () => {
    const g = tf.tidy(() =>
      tf
        .grad((x: tf.Tensor) => tf.sum(tf.mul(x, tf.tensor([3, 4, 5]))))(tf.tensor([1, 2, 3]))
        .dataSync(),
    );
    expect(Array.from(g)).toEqual([3, 4, 5]);
  });

  it('conv2d filter gradients work on wasm (which has no Conv2DBackpropFilter kernel of its own)', () => {
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    // x = 1, L = Σ conv2d(x, w, 'same') over 4×4: ∂L/∂w[i,j] counts the output positions where
    // tap (i, j) lands inside the image, 3 or 4 per axis: the product of the per-axis counts.
    const g = tf.tidy(() =>
      tf
        .grad((w: tf.Tensor) => tf.sum(tf.conv2d(tf.ones([1, 4, 4, 1]) as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')))(
          tf.zeros([3, 3, 1, 1]),
        )
        .dataSync(),
    );
    expect(Array.from(g)).toEqual([9, 12, 9, 12, 16, 12, 9, 12, 9]);
  });
});
