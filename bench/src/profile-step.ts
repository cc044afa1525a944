// Per-kernel profile of one training step (forward + backward) of a training preset's phase model.
// From the repo root: pnpm bench:profile <backend> <batch> [preset=emoji] [phase=last]
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, Rng } from '@matryoshka-ts/core';
import { NestedUNet, type NestedUNetConfig } from '@matryoshka-ts/nested-unet';
import { modelConfigOf, parseTrainConfig } from '../../apps/trainer/src/config.js';
import { levelsOf, phaseModelConfig } from '../../apps/trainer/src/phases.js';
import { TRAIN_PRESETS } from '../../apps/trainer/src/train-presets.js';

const backend = (process.argv[2] ?? 'wasm') as 'wasm' | 'cpu';
const B = Number(process.argv[3] ?? 4);
await initBackend({ backend, quiet: true });
// The model of a training preset's phase: `profile-step.ts <backend> <batch> [preset] [phase]`.
const presetName = process.argv[4] ?? 'emoji';
const train = parseTrainConfig(TRAIN_PRESETS[presetName]);
const phaseIndex = Number(process.argv[5] ?? train.phases.length - 1);
const full = modelConfigOf(train);
const from = levelsOf(full).findIndex((l) => l.resolution === train.phases[phaseIndex].resolution);
const config: NestedUNetConfig = phaseModelConfig(full, from);
const model = new NestedUNet(config);
const rng = new Rng(1);
const x = model.config.levels.map((l) => rng.normalTensor([B, l.resolution, l.resolution, 3]) as tf.Tensor4D);
const tokens = rng.normalTensor([B, 8, config.text ? config.text.featureDim : 1]) as tf.Tensor3D;
const mask = tf.ones([B, 8]) as tf.Tensor2D;
const vars = [...model.params.values()];
const step = () => {
  const { value, grads } = tf.variableGrads(() => {
    const outs = model.forward({ x, times: Array(B).fill(100), tokens, mask });
    return tf.addN(outs.map((o) => tf.mean(tf.square(o)))) as tf.Scalar;
  }, vars);
  value.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
};
step();
const info = await tf.profile(step);
const agg = new Map<string, { ms: number; n: number }>();
for (const k of info.kernels) {
  const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
  const a = agg.get(k.name) ?? { ms: 0, n: 0 };
  a.ms += ms; a.n += 1; agg.set(k.name, a);
}
const total = [...agg.values()].reduce((s, a) => s + a.ms, 0);
console.log('total kernel ms', total.toFixed(0));
for (const [name, a] of [...agg].sort((p, q) => q[1].ms - p[1].ms).slice(0, 20)) console.log(name.padEnd(28), a.ms.toFixed(0).padStart(8), String(a.n).padStart(6));
