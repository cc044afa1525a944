import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { adamUpdate } from './adam-update.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('adamUpdate (tfjs ops)', () => {
  it('is Adam: m, v and the parameter after two steps equal the float64 formula', () => {
    const p0 = [0.5, -1, 2, 0];
    const grads = [
      [0.1, -0.2, 0.3, 0],
      [-0.05, 0.4, 0.3, 1e-3],
    ];
    const [lr, beta1, beta2, eps] = [1e-2, 0.9, 0.99, 1e-8];
    let p: tf.Tensor = tf.tensor1d(p0);
    let m: tf.Tensor = tf.zeros([4]);
    let v: tf.Tensor = tf.zeros([4]);
    const want = { p: [...p0], m: [0, 0, 0, 0], v: [0, 0, 0, 0] };
    grads.forEach((g, i) => {
      const t = i + 1;
      const c1 = 1 - beta1 ** t;
      const c2 = Math.sqrt(1 - beta2 ** t);
      const [p1, m1, v1] = adamUpdate(p, tf.tensor1d(g), m, v, { lr, beta1, beta2, eps, c1, c2 });
      tf.dispose([p, m, v]);
      [p, m, v] = [p1, m1, v1];
      for (let k = 0; k < 4; k++) {
        want.m[k] = beta1 * want.m[k] + (1 - beta1) * g[k];
        want.v[k] = beta2 * want.v[k] + (1 - beta2) * g[k] ** 2;
        want.p[k] -= (lr / c1) * (want.m[k] / (Math.sqrt(want.v[k]) / c2 + eps));
      }
    });
    // float32 storage of values near 1: agreement to ~1e-7 relative.
    const close = (a: ArrayLike<number>, b: number[]) => b.forEach((x, k) => expect(a[k]).toBeCloseTo(x, 6));
    close(p.dataSync(), want.p);
    close(m.dataSync(), want.m);
    close(v.dataSync(), want.v);
    tf.dispose([p, m, v]);
  });
});
