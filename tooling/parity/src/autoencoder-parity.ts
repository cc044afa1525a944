import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { nchwToNhwc, nhwcToNchw } from '@matryoshka-ts/core';
import { type BackendName, initBackend } from '@matryoshka-ts/backends';
import { SafetensorsFile, fromTorchLayout, toFloat32, toNumbers } from '@matryoshka-ts/checkpoint';
import {
  AutoencoderKL,
  decodeLatent,
  diagonalGaussian,
  disposePosterior,
  encodeMoments,
  fromCompVisConfig,
  klDivergence,
  loadAutoencoderWeights,
  samplePosterior,
} from '@matryoshka-ts/autoencoder';
import { paramsFrom } from '@matryoshka-ts/layers';
import { maxAbs, maxAbsDiff } from '@matryoshka-ts/test-utils';
import { forEachFixture } from './suite.js';

/** What the autoencoder suite reads of a fixture's config.json (shared/fixtures/ldm-autoencoder/README.md). */
interface AutoencoderFixtureConfig {
  kind: 'ldm-autoencoder-kl';
  ddconfig: unknown;
  embed_dim: number;
  param_count: number;
}

/**
 * Parity of CompVis's KL autoencoder on one backend, for every `ldm-autoencoder-kl` fixture.
 * Tolerances (fixture README): outputs within 1e-4 of their largest entry, the KL within 1e-4
 * relative, gradients within 1e-3 of their largest entry: float32 with different summation orders.
 */
export function autoencoderParitySuite(backend: Exclude<BackendName, 'auto'>): void {
  forEachFixture<AutoencoderFixtureConfig>(
    `autoencoder parity on ${backend}`,
    (fixture) => {
      let model: AutoencoderKL;
      let io: SafetensorsFile;
      const nhwc = (name: string) => {
        const e = io.read(name);
        return tf.tidy(() => nchwToNhwc(tf.tensor4d(toFloat32(e.data), e.shape as [number, number, number, number])));
      };
      const ref = (name: string) => toFloat32(io.read(name).data);
      /** Compares an NHWC tensor with an NCHW reference, within `rel` of the reference's largest entry. */
      const expectClose = (ours: tf.Tensor4D, name: string, rel = 1e-4) => {
        const want = ref(name);
        const got = tf.tidy(() => nhwcToNchw(ours));
        expect(got.shape, name).toEqual(io.read(name).shape);
        expect(maxAbsDiff(got.dataSync(), want), name).toBeLessThanOrEqual(rel * Math.max(maxAbs(want), 1e-30));
        got.dispose();
      };

      beforeAll(async () => {
        await initBackend({ backend, quiet: true });
        model = new AutoencoderKL(fromCompVisConfig(fixture.config.ddconfig, fixture.config.embed_dim));
        loadAutoencoderWeights(model, fixture.file('weights'), { naming: 'compvis' });
        io = SafetensorsFile.open(fixture.file('io'));
      });
      afterAll(() => {
        model?.dispose();
        io?.close();
      });

      it('imports every CompVis weight by name and shape', () => {
        const file = SafetensorsFile.open(fixture.file('weights'));
        expect(new Set(model.specs.map((s) => s.name))).toEqual(new Set(file.names));
        file.close();
        expect(model.paramCount).toBe(fixture.config.param_count);
      });

      it('encode: moments, posterior, sample, decode, mode decode and KL', () => {
        const start = tf.memory().numTensors;
        const x = nhwc('x');
        const moments = tf.tidy(() => encodeMoments(model.P, model.config, x));
        expectClose(moments, 'moments');
        const posterior = diagonalGaussian(moments);
        expectClose(posterior.mean, 'posterior.mean');
        expectClose(posterior.logvar, 'posterior.logvar');
        expectClose(posterior.std, 'posterior.std');
        const eps = nhwc('eps');
        const z = samplePosterior(posterior, eps);
        expectClose(z, 'z');
        const dec = model.decode(z);
        expectClose(dec, 'dec');
        const decMode = model.decode(posterior.mean);
        expectClose(decMode, 'dec_mode');
        const kl = klDivergence(posterior);
        const klRef = ref('kl');
        expect(maxAbsDiff(kl.dataSync(), klRef), 'kl').toBeLessThanOrEqual(1e-4 * maxAbs(klRef));
        tf.dispose([x, moments, eps, z, dec, decMode, kl]);
        disposePosterior(posterior);
        expect(tf.memory().numTensors, 'tensors leaked').toBe(start);
      });

      it('decoder alone on an independent latent', () => {
        const z = nhwc('z_in');
        const dec = model.decode(z);
        expectClose(dec, 'dec_in');
        tf.dispose([z, dec]);
      });

      it('backward: ∂loss/∂x and every parameter gradient within 1e-3 of its largest entry', () => {
        const gradNames = io.names.filter((n) => n.startsWith('grad.') && n !== 'grad.x').map((n) => n.slice(5));
        const names = [...model.params.keys()];
        const x = nhwc('x');
        const eps = nhwc('eps');
        const gradOut = nhwc('grad_out');
        const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
          const P = paramsFrom(new Map(names.map((n, i) => [n, xs[i]])));
          const posterior = diagonalGaussian(encodeMoments(P, model.config, xs[names.length] as tf.Tensor4D));
          const dec = decodeLatent(P, model.config, samplePosterior(posterior, eps));
          return tf.add(tf.sum(tf.mul(dec, gradOut)), tf.mul(tf.sum(klDivergence(posterior)), 0.5)) as tf.Scalar;
        })([...names.map((n) => model.params.get(n)!), x]);
        const loss = toNumbers(io.read('loss').data)[0];
        // The loss sums O(10⁴) float32 products: 1e-4 relative.
        expect(Math.abs(value.dataSync()[0] - loss)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(loss)));
        const gx = tf.tidy(() => nhwcToNchw(grads[names.length] as tf.Tensor4D));
        const refX = ref('grad.x');
        expect(maxAbsDiff(gx.dataSync(), refX), 'grad.x').toBeLessThanOrEqual(1e-3 * maxAbs(refX));
        const specs = new Map(model.specs.map((s) => [s.name, s]));
        // Some gradients are zero in exact arithmetic (a key bias under softmax, a conv bias before a
        // GroupNorm of one channel per group); both sides then hold float32 cancellation noise, up to
        // a few ulps (eps 1.2e-7) of the largest gradient times the terms summed. So the tolerance is
        // never below 1e-6 of the largest gradient: each scale is floored at 1e-3 × the largest.
        const largest = Math.max(...gradNames.map((n) => maxAbs(ref(`grad.${n}`))));
        for (const name of gradNames) {
          const i = names.indexOf(name);
          expect(i, `grad.${name} names a model parameter`).toBeGreaterThanOrEqual(0);
          const want = fromTorchLayout(specs.get(name)!, ref(`grad.${name}`));
          expect(maxAbsDiff(grads[i].dataSync(), want), `grad.${name}`).toBeLessThanOrEqual(
            1e-3 * Math.max(maxAbs(want), 1e-3 * largest),
          );
        }
        expect(gradNames.length, 'io.safetensors stores a gradient for every parameter').toBe(names.length);
        tf.dispose([value, ...grads, gx, x, eps, gradOut]);
      });
    },
    'ldm-autoencoder-kl',
  );
}
