import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { nchwToNhwc, nhwcToNchw } from '@matryoshka-ts/core';
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
import type { FixtureFolder } from '@matryoshka-ts/test-utils';
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

/**
 * Forward and backward parity of every fixture's model on one backend. Tolerances (fixture
 * README): outputs and intermediates 1e-4 absolute (float32 accumulation over different
 * summation orders; PyTorch itself moves by 2e-6 between 1 and 2 threads), gradients 1e-3 of the
 * largest entry of each gradient.
 */
export function modelParitySuite(backend: Exclude<BackendName, 'auto'>): void {
  forEachFixture(`model parity on ${backend}`, (fixture) => {
    let model: NestedUNet;
    let io: SafetensorsFile;
    const levels = fixture.config.num_levels;
    const read = (name: string) => io.read(name);

    beforeAll(async () => {
      await initBackend({ backend, quiet: true });
      model = modelFromFixture(fixture);
      io = SafetensorsFile.open(fixture.file('io'));
    });
    afterAll(() => {
      model?.dispose();
      io?.close();
    });

    const inputs = () => ({
      x: Array.from({ length: levels }, (_, n) => imageTensor(read(`x.level${n}`))),
      times: toNumbers(read('times').data),
      tokens: tf.tensor3d(toFloat32(read('lm_outputs').data), read('lm_outputs').shape as [number, number, number]),
      mask: tf.tensor2d(toFloat32(read('lm_mask').data), read('lm_mask').shape as [number, number]),
    });

    it('imports every official weight by name and shape', () => {
      const file = SafetensorsFile.open(fixture.file('weights'));
      expect(new Set(model.specs.map((s) => s.name))).toEqual(new Set(file.names));
      file.close();
      expect(model.paramCount).toBe(fixture.config.param_count);
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

    it('forward: every level output and debug intermediate within 1e-4', () => {
      const debug = new Map<string, tf.Tensor>();
      const start = tf.memory().numTensors;
      const input = inputs();
      const outputs = model.forward(input, { debug: (name, t) => debug.set(name, t) });
      const expected: Array<[string, tf.Tensor, TensorEntry]> = [];
      outputs.forEach((out, n) => expected.push([`out.level${n}`, nhwcToNchw(out), read(`out.level${n}`)]));
      for (let n = 0; n < levels; n++) {
        if (io.has(`dbg.time_mlp.level${n}`))
          expected.push([`time_mlp.level${n}`, debug.get(`time_mlp.level${n}`)!, read(`dbg.time_mlp.level${n}`)]);
        if (io.has(`dbg.micro_scale_mlp.level${n}`))
          expected.push([`micro.level${n}`, debug.get(`micro_mlp.level${n}`)!, read(`dbg.micro_scale_mlp.level${n}`)]);
      }
      for (const name of ['lm_proj', 'pooled_text', 'cond_emb'])
        if (io.has(`dbg.${name}`)) expected.push([name, debug.get(name)!, read(`dbg.${name}`)]);
      for (const [name, ours, ref] of expected) {
        expect(ours, name).toBeDefined();
        expect(ours.shape, name).toEqual(ref.shape);
        expect(maxAbsDiff(ours.dataSync(), toFloat32(ref.data)), name).toBeLessThanOrEqual(1e-4);
      }
      tf.dispose([...debug.values(), ...expected.filter(([n]) => n.startsWith('out.')).map(([, t]) => t), ...outputs]);
      tf.dispose([...input.x, input.tokens, input.mask]);
      expect(tf.memory().numTensors, 'tensors leaked by forward').toBe(start);
    });

    it('backward: every stored gradient within 1e-3 of its largest entry', () => {
      const gradNames = io.names.filter((n) => n.startsWith('grad.')).map((n) => n.slice(5));
      const paramNames = gradNames.filter((n) => model.params.has(n));
      const input = inputs();
      const innermost = levels - 1;
      const R = Array.from({ length: levels }, (_, n) => imageTensor(read(`R.level${n}`)));
      const args = [...paramNames.map((n) => model.params.get(n)!), input.tokens, input.x[innermost]];
      const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
        const overrides = new Map(paramNames.map((n, i) => [n, xs[i]]));
        const P = paramsFrom(new Map([...model.params, ...overrides]));
        const x = [...input.x.slice(0, innermost), xs[xs.length - 1] as tf.Tensor4D];
        const outs = model.forward({ ...input, x, tokens: xs[xs.length - 2] as tf.Tensor3D }, { params: P });
        return tf.addN(outs.map((o, n) => tf.sum(tf.mul(o, R[n])))) as tf.Scalar;
      })(args);
      const objective = toNumbers(read('objective').data)[0];
      expect(Math.abs(value.dataSync()[0] - objective)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(objective)));
      const specs = new Map(model.specs.map((s) => [s.name, s]));
      paramNames.forEach((name, i) => {
        const ref = fromTorchLayout(specs.get(name)!, toFloat32(read(`grad.${name}`).data));
        const d = maxAbsDiff(grads[i].dataSync(), ref);
        expect(d, `grad.${name}`).toBeLessThanOrEqual(1e-3 * maxAbs(ref));
      });
      const refTokens = toFloat32(read('grad_input.lm_outputs').data);
      expect(maxAbsDiff(grads[paramNames.length].dataSync(), refTokens), 'lm_outputs').toBeLessThanOrEqual(
        1e-3 * maxAbs(refTokens),
      );
      const gx = nhwcToNchw(grads[paramNames.length + 1] as tf.Tensor4D);
      const refX = toFloat32(read(`grad_input.x.level${innermost}`).data);
      expect(maxAbsDiff(gx.dataSync(), refX), 'x innermost').toBeLessThanOrEqual(1e-3 * maxAbs(refX));
      expect(paramNames, 'every grad.* in io.safetensors names a model parameter').toHaveLength(gradNames.length);
      tf.dispose([value, ...grads, gx, ...R, ...input.x, input.tokens, input.mask]);
    });
  });
}
