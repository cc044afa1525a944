// Exports what the PyTorch reference (bench/torch/mdm_reference.py) needs to rebuild a training
// preset's (or a sweep model's, bench/src/sweep-models.ts) NestedUNet and check it against ours:
//   node --conditions=source --import tsx bench/src/export-reference.ts \
//     [outDir=/tmp/mdm-reference] [preset=emoji] [backend=cpu]
// (`pnpm bench --sweep` passes `native`: the cpu backend's forward of the larger sweep models takes minutes.)
// writes, in outDir:
//   config.json               the resolved NestedUNetConfig, plus `paramCount` and the `train` settings the
//                             benchmark mirrors
//   weights.safetensors       the initial weights (seed 1), official ml-mdm names and PyTorch layouts (OIHW, [out, in])
//   check-weights.safetensors the same weights with every zero/one-initialised tensor perturbed, so that the
//                             forward pass is not trivially 0 (conv_out and the adapters start at zero)
//   io.safetensors            a deterministic batch — x.N (NCHW, level 0 first), times, tokens, mask — and
//                             out.N, our forward outputs (NCHW) with check-weights on `backend`;
//                             plus gammas.N, each level's ᾱ table (for the benchmark's noising and sampling step)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type ParamSpec, Rng, nhwcToNchw, sizeOf } from '@matryoshka-ts/core';
import { type BackendName, initBackend } from '@matryoshka-ts/backends';
import { type TensorToWrite, exportMlMdmStateDict, writeSafetensors } from '@matryoshka-ts/checkpoint';
import { NestedUNet } from '@matryoshka-ts/nested-unet';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders';
import { levelSchedulesOf, modelConfigOf, parseTrainConfig } from '@matryoshka-ts/pipelines';
import { benchModel } from './sweep-models.js';

const [outDir = '/tmp/mdm-reference', presetName = 'emoji', backend = 'cpu'] = process.argv.slice(2);
const preset = benchModel(presetName);

await initBackend({ backend: backend as BackendName, quiet: true });
mkdirSync(outDir, { recursive: true });

const train = parseTrainConfig(preset);
const model = new NestedUNet(modelConfigOf(train), { seed: 1 });
const levels = model.config.levels;

// ---------------------------------------------------------------- config.json
const conditioning = train.conditioning;
const configJson = {
  ...model.config,
  paramCount: model.paramCount,
  // What the benchmark mirrors of the training setup (not part of the model).
  train: {
    preset: presetName,
    prediction: train.loss.prediction,
    target: train.loss.target,
    optimizer: train.optimizer,
    schedule: train.schedule,
    maxTokens: conditioning.kind === 'text' ? conditioning.encoder.maxTokens : 0,
    sampler: train.sampling.sampler,
    threshold: train.sampling.threshold,
  },
};
writeFileSync(join(outDir, 'config.json'), `${JSON.stringify(configJson, null, 2)}\n`);

// ---------------------------------------------------------------- weights
const initial = model.getWeights();
writeSafetensors(join(outDir, 'weights.safetensors'), exportMlMdmStateDict(model.specs, initial), {
  preset: presetName,
  seed: '1',
});

/**
 * A copy of `value` with zero- and one-initialised tensors moved off their constants (uniform noise of the layer's
 * fan-in scale).
 */
function perturbed(spec: ParamSpec, value: Float32Array, rng: Rng): Float32Array {
  if (spec.init.kind !== 'zeros' && spec.init.kind !== 'ones') return value;
  const s = spec.shape;
  const fanIn = spec.layout === 'conv2d' ? s[0] * s[1] * s[2] : spec.layout === 'linear' ? s[0] : 100;
  const bound = 1 / Math.sqrt(fanIn);
  return value.map((v) => v + (2 * rng.uniform() - 1) * bound);
}
const checkRng = new Rng(7);
const checkWeights = new Map(
  model.specs.map((spec) => [spec.name, perturbed(spec, initial.get(spec.name)!, checkRng)]),
);
model.setWeights(checkWeights);
writeSafetensors(join(outDir, 'check-weights.safetensors'), exportMlMdmStateDict(model.specs, checkWeights), {
  preset: presetName,
  seed: '1',
  perturbed: '7',
});

// ---------------------------------------------------------------- io
const io = new Map<string, TensorToWrite>();
const f32 = (t: tf.Tensor): TensorToWrite => ({ dtype: 'F32', shape: t.shape, data: t.dataSync() as Float32Array });
const rng = new Rng(3);
const captions = ['grinning face with big eyes', 'cat'];
const batch = captions.length;
const x = levels.map(
  (l) => rng.normalTensor([batch, l.resolution, l.resolution, model.config.imageChannels]) as tf.Tensor4D,
);
const times = [17, 503];
let tokens: tf.Tensor3D | undefined;
let mask: tf.Tensor2D | undefined;
if (conditioning.kind === 'text') ({ tokens, mask } = new HashedWordEncoder(conditioning.encoder).encode(captions));
if (model.config.labels) throw new Error('label-conditioned presets are not exported (no train preset uses labels)');
const outputs = model.forward({ x, times, tokens, mask });
levels.forEach((_, n) => {
  io.set(`x.${n}`, f32(nhwcToNchw(x[n])));
  io.set(`out.${n}`, f32(nhwcToNchw(outputs[n])));
});
io.set('times', { dtype: 'F32', shape: [batch], data: times });
if (tokens && mask) {
  io.set('tokens', f32(tokens));
  io.set('mask', f32(mask));
}
levelSchedulesOf(train).forEach((s, n) =>
  io.set(`gammas.${n}`, { dtype: 'F32', shape: [s.gammasF32.length], data: s.gammasF32 }),
);
writeSafetensors(join(outDir, 'io.safetensors'), io, { preset: presetName, captions: JSON.stringify(captions) });

const total = model.specs.reduce((n, s) => n + sizeOf(s.shape), 0);
console.log(
  `${presetName}: ${levels.map((l) => l.resolution).join('→')} px, ${total.toLocaleString('en')} params → ` +
    `${outDir}/{config.json, weights.safetensors, check-weights.safetensors, io.safetensors}; ` +
    `output |max| per level: ${outputs.map((o) => tf.max(tf.abs(o)).dataSync()[0].toFixed(3)).join(', ')}`,
);
tf.dispose([...x, ...outputs, ...(tokens ? [tokens] : []), ...(mask ? [mask] : [])]);
model.dispose();
