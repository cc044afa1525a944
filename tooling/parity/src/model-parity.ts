import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { framesToTiled, nchwToNhwc, nhwcToNchw, tiledToFrames } from '@matryoshka-ts/core';
import { type BackendName, initBackend } from '@matryoshka-ts/backends';
import {
  SafetensorsFile,
  type TensorEntry,
  fromTorchLayout,
  importMlMdmStateDict,
  toFloat32,
  toNumbers,
} from '@matryoshka-ts/checkpoint';
import {
  NestedUNet,
  type MlMdmUNetConfig,
  fromMlMdmConfig,
  paramsFrom,
  timeFrequencies,
} from '@matryoshka-ts/nested-unet';
import type { FixtureFolder, FixtureKind } from '@matryoshka-ts/test-utils';
import { maxAbs, maxAbsDiff } from '@matryoshka-ts/test-utils';
import { forEachFixture } from './suite.js';

/** Builds our model from a fixture's config.json and imports its official weights. */
export function modelFromFixture(fixture: FixtureFolder): NestedUNet {
  const unet = fixture.config.ml_mdm_config.unet_config as MlMdmUNetConfig;
  const model = new NestedUNet(fromMlMdmConfig(unet, fixture.config.levels[0].resolution));
  const file = SafetensorsFile.open(fixture.file('weights'));
  try {
    model.setWeights(importMlMdmStateDict(model.specs, file));
  } finally {
    file.close();
  }
  return model;
}

/** An NCHW fixture tensor as an NHWC tensor. */
export function imageTensor(entry: TensorEntry): tf.Tensor4D {
  return tf.tidy(() => nchwToNhwc(tf.tensor4d(toFloat32(entry.data), entry.shape as [number, number, number, number])));
}

/** The fixture kinds whose folders hold NestedUNets: images, and video (`temporal: true`). */
export const MODEL_FIXTURE_KINDS: FixtureKind[] = ['ml-mdm', 'ml-mdm-video'];

/** Frames per sample at level `n` of a fixture (1 for images; a video folder's `frames_per_level`). */
export function levelFrames(fixture: FixtureFolder, n: number): number {
  return fixture.config.video?.frames_per_level[n] ?? 1;
}

/** The side of a frame at level `n` (for a video folder's clip levels `levels[n].resolution` is the clip image's). */
export function levelResolution(fixture: FixtureFolder, n: number): number {
  return fixture.config.video?.frame_size_per_level[n] ?? fixture.config.levels[n].resolution;
}

/** A level's fixture tensor (NCHW; a clip as one image tiled √F × √F) in our layout: NHWC, frames in the batch. */
export function levelTensor(entry: TensorEntry, frames: number): tf.Tensor4D {
  return tf.tidy(() => (frames > 1 ? tiledToFrames(imageTensor(entry), frames) : imageTensor(entry)));
}

/** The inverse of `levelTensor`: our [B·F, h, w, C] as the official NCHW clip image. */
export function officialLayout(t: tf.Tensor4D, frames: number): tf.Tensor4D {
  return tf.tidy(() => nhwcToNchw(frames > 1 ? framesToTiled(t, frames) : t));
}

/**
 * One of our debug intermediates in the layout of the fixture's `dbg.*` tensor: [B, F, C, h, w]
 * for a level's frames, NCHW for feature maps, as they are otherwise.
 */
function asReference(ours: tf.Tensor, refShape: number[]): tf.Tensor {
  return tf.tidy(() => {
    if (refShape.length === 5) return tf.reshape(tf.transpose(ours, [0, 3, 1, 2]), refShape);
    if (refShape.length === 4) return nhwcToNchw(ours as tf.Tensor4D);
    return ours.clone();
  });
}

/**
 * Forward and backward parity of every fixture's model on one backend. Tolerances (fixture
 * README): outputs and intermediates 1e-4 absolute (float32 accumulation over different
 * summation orders; PyTorch itself moves by 2e-6 between 1 and 2 threads), gradients 1e-3 of the
 * largest entry of each gradient.
 */
export function modelParitySuite(backend: Exclude<BackendName, 'auto'>, options: ParityOptions = {}): void {
  for (const kind of MODEL_FIXTURE_KINDS) modelParityOf(backend, kind, options.fixtures);
}

/** Outputs and intermediates: absolute; gradients: relative to each gradient's largest entry. */
const tol = { forward: 1e-4, gradient: 1e-3 };

/** How a backend's run of a parity suite differs from the default one. */
export interface ParityOptions {
  /** Which fixture folders run (default: all; the webgpu suites' choice: `webgpuFixtures`). */
  fixtures?: (fixture: FixtureFolder) => boolean;
}

function modelParityOf(
  backend: Exclude<BackendName, 'auto'>,
  kind: FixtureKind,
  only?: (fixture: FixtureFolder) => boolean,
): void {
  forEachFixture(
    `model parity on ${backend}`,
    (fixture) => {
      let model: NestedUNet;
      let io: SafetensorsFile;
      const levels = fixture.config.num_levels;
      const frames = (n: number) => levelFrames(fixture, n);
      const read = (name: string) => io.read(name);
      // The largest differences measured, printed after the folder's tests (the tolerances' margins).
      const worst = { forward: 0, gradient: 0 };

      beforeAll(async () => {
        await initBackend({ backend, quiet: true });
        model = modelFromFixture(fixture);
        io = SafetensorsFile.open(fixture.file('io'));
      });
      afterAll(() => {
        model?.dispose();
        io?.close();
        console.log(
          `[parity] model ${fixture.name} on ${backend}: forward max |Δ| ${worst.forward.toExponential(2)} ` +
            `(≤ ${tol.forward}), gradients max |Δ| / max |ref| ${worst.gradient.toExponential(2)} (≤ ${tol.gradient})`,
        );
      });
      /** |Δ| ≤ tol.gradient of the reference's largest entry; records the ratio. */
      const expectGradient = (ours: ArrayLike<number>, ref: ArrayLike<number>, what: string) => {
        const d = maxAbsDiff(ours, ref);
        worst.gradient = Math.max(worst.gradient, d / maxAbs(ref));
        expect(d, what).toBeLessThanOrEqual(tol.gradient * maxAbs(ref));
      };

      const inputs = () => ({
        x: Array.from({ length: levels }, (_, n) => levelTensor(read(`x.level${n}`), frames(n))),
        times: toNumbers(read('times').data),
        tokens: tf.tensor3d(toFloat32(read('lm_outputs').data), read('lm_outputs').shape as [number, number, number]),
        mask: tf.tensor2d(toFloat32(read('lm_mask').data), read('lm_mask').shape as [number, number]),
      });

      it('imports every official weight by name and shape', () => {
        const file = SafetensorsFile.open(fixture.file('weights'));
        expect(new Set(model.specs.map((s) => s.name))).toEqual(new Set(file.names));
        file.close();
        expect(model.paramCount).toBe(fixture.config.param_count);
        model.levels.forEach((level, n) => expect(level.frames, `level ${n} frames`).toBe(frames(n)));
      });

      // Within 4 float32 ulps (2.4e-7 relative): our exp is correctly rounded, PyTorch's vectorised
      // float32 exp is not, so the last entries can differ by an ulp or two.
      it('sinusoid frequencies equal t_freqs to float32 exp accuracy', () => {
        model.config.levels.forEach((level, n) => {
          const ours = timeFrequencies(level.timeEmbedDim);
          const ref = toFloat32(read(`t_freqs.level${n}`).data);
          expect(ours.length).toBe(ref.length);
          ref.forEach((r, k) => expect(Math.abs(ours[k] - r), `k=${k}`).toBeLessThanOrEqual(2.4e-7 * Math.abs(r)));
        });
      });

      it('forward: every level output and debug intermediate within 1e-4', async () => {
        const debug = new Map<string, tf.Tensor>();
        // The native backend is wasm with our kernels registered over its own.
        expect(tf.getBackend()).toBe(backend === 'native' ? 'wasm' : backend);
        const start = tf.memory().numTensors;
        const input = inputs();
        const outputs = model.forward(input, { debug: (name, t) => debug.set(name, t) });
        const expected: Array<[string, tf.Tensor, TensorEntry]> = [];
        outputs.forEach((out, n) =>
          expected.push([`out.level${n}`, officialLayout(out, frames(n)), read(`out.level${n}`)]),
        );
        // Every dbg.* tensor the folder stores, under our debug name (micro_scale_mlp is micro_mlp).
        for (const ioName of io.names.filter((n) => n.startsWith('dbg.'))) {
          const name = ioName.slice(4).replace(/^micro_scale_mlp\./, 'micro_mlp.');
          const ours = debug.get(name);
          expect(ours, `debug intermediate ${name}`).toBeDefined();
          const ref = read(ioName);
          expected.push([name, asReference(ours!, ref.shape), ref]);
        }
        for (const [name, ours, ref] of expected) {
          expect(ours.shape, name).toEqual(ref.shape);
          const d = maxAbsDiff(await ours.data(), toFloat32(ref.data));
          worst.forward = Math.max(worst.forward, d);
          expect(d, name).toBeLessThanOrEqual(tol.forward);
        }
        tf.dispose([...debug.values(), ...expected.map(([, t]) => t), ...outputs]);
        tf.dispose([...input.x, input.tokens, input.mask]);
        expect(tf.memory().numTensors, 'tensors leaked by forward').toBe(start);
      });

      it('backward: every stored gradient within 1e-3 of its largest entry', async () => {
        const gradNames = io.names.filter((n) => n.startsWith('grad.')).map((n) => n.slice(5));
        const paramNames = gradNames.filter((n) => model.params.has(n));
        const input = inputs();
        // The input gradients stored: the innermost level's, or every level's (video folders).
        const xLevels = [...Array(levels).keys()].filter((n) => io.has(`grad_input.x.level${n}`));
        const R = Array.from({ length: levels }, (_, n) => levelTensor(read(`R.level${n}`), frames(n)));
        const args = [...paramNames.map((n) => model.params.get(n)!), input.tokens, ...xLevels.map((n) => input.x[n])];
        const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
          const overrides = new Map(paramNames.map((n, i) => [n, xs[i]]));
          const P = paramsFrom(new Map([...model.params, ...overrides]));
          const x = [...input.x];
          xLevels.forEach((n, i) => {
            x[n] = xs[paramNames.length + 1 + i] as tf.Tensor4D;
          });
          const outs = model.forward({ ...input, x, tokens: xs[paramNames.length] as tf.Tensor3D }, { params: P });
          return tf.addN(outs.map((o, n) => tf.sum(tf.mul(o, R[n])))) as tf.Scalar;
        })(args);
        const objective = toNumbers(read('objective').data)[0];
        expect(Math.abs((await value.data())[0] - objective)).toBeLessThanOrEqual(
          tol.forward * Math.max(1, Math.abs(objective)),
        );
        const specs = new Map(model.specs.map((s) => [s.name, s]));
        for (const [i, name] of paramNames.entries()) {
          const ref = fromTorchLayout(specs.get(name)!, toFloat32(read(`grad.${name}`).data));
          expectGradient(await grads[i].data(), ref, `grad.${name}`);
        }
        const refTokens = toFloat32(read('grad_input.lm_outputs').data);
        expectGradient(await grads[paramNames.length].data(), refTokens, 'lm_outputs');
        const gx = xLevels.map((n, i) => officialLayout(grads[paramNames.length + 1 + i] as tf.Tensor4D, frames(n)));
        for (const [i, n] of xLevels.entries()) {
          const refX = toFloat32(read(`grad_input.x.level${n}`).data);
          expectGradient(await gx[i].data(), refX, `x level ${n}`);
        }
        expect(xLevels.length, 'the folder stores an input gradient').toBeGreaterThan(0);
        expect(paramNames, 'every grad.* in io.safetensors names a model parameter').toHaveLength(gradNames.length);
        tf.dispose([value, ...grads, ...gx, ...R, ...input.x, input.tokens, input.mask]);
      });
    },
    kind,
    only,
  );
}
