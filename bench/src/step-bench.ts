// Times one training step and one sampling step of a training preset's full model on each
// backend that is installed, and prints steps/s and tf.memory(). A benchmark, not a test:
//   pnpm bench:steps [preset=emoji] [batch=8] [repeats=3]
import * as tf from '@tensorflow/tfjs-core';
import { type BackendName, Rng, initBackend } from '@matryoshka-ts/core';
import { drawTrainingExample, multiResolutionLoss } from '@matryoshka-ts/losses';
import { NestedUNet } from '@matryoshka-ts/nested-unet';
import { networkDenoiser, sampleStep } from '@matryoshka-ts/samplers';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders';
import { modelConfigOf, parseTrainConfig } from '../../apps/trainer/src/config.js';
import { TRAIN_PRESETS } from '../../apps/trainer/src/train-presets.js';
import { levelSchedules } from '../../apps/trainer/src/train.js';

const [presetName = 'emoji', batchArg = '8', repeatsArg = '3'] = process.argv.slice(2);
const batch = Number(batchArg);
const repeats = Number(repeatsArg);
const config = parseTrainConfig(TRAIN_PRESETS[presetName]);
const full = modelConfigOf(config);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

for (const backend of ['cpu', 'wasm', 'native', 'tensorflow'] as Exclude<BackendName, 'auto'>[]) {
  try {
    await initBackend({ backend, quiet: true });
  } catch (error) {
    console.log(`${backend}: not available (${(error as Error).message.split('.')[0]})`);
    continue;
  }
  const model = new NestedUNet(full, { seed: 1 });
  const levels = model.config.levels;
  const schedules = levelSchedules(config, levels.map((l) => l.resolution));
  const rng = new Rng(2);
  const encoder = new HashedWordEncoder(config.conditioning.encoder);
  const { tokens, mask } = encoder.encode(new Array(batch).fill('grinning face with big eyes'));
  const images = rng.normalTensor([batch, levels[0].resolution, levels[0].resolution, 3]) as tf.Tensor4D;
  const vars = [...model.params.values()];
  const trainStep = () => {
    const example = drawTrainingExample(images, { tables: schedules.map((s) => s.gammasF32), resolutions: levels.map((l) => l.resolution) }, rng);
    const { value, grads } = tf.variableGrads(() => multiResolutionLoss(model.forward({ x: example.xt, times: example.times, tokens, mask }), example, { prediction: 'v', target: 'eps' }).loss, vars);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
    tf.dispose(example);
  };
  const noise = levels.map((l) => rng.normalTensor([batch, l.resolution, l.resolution, 3]) as tf.Tensor4D);
  const denoiser = networkDenoiser((x, times) => model.forward({ x, times, tokens, mask }));
  const sampleOnce = () => {
    const next = sampleStep(denoiser, noise, 600, 596, { schedules, sampler: 'ddpm', rng });
    next.forEach((t) => t.dataSync());
    tf.dispose(next);
  };
  const time = (f: () => void) => {
    f(); // warm-up
    const ts: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const t0 = performance.now();
      f();
      ts.push((performance.now() - t0) / 1000);
    }
    return median(ts);
  };
  const before = tf.memory().numTensors;
  const train = time(trainStep);
  const sampling = time(sampleOnce);
  const mem = tf.memory();
  console.log(
    `${backend}: ${presetName} (${levels.map((l) => l.resolution).join('→')} px, ${model.paramCount.toLocaleString('en')} params), batch ${batch}: ` +
      `train step ${train.toFixed(2)} s (${(1 / train).toFixed(2)} steps/s), sampling step ${sampling.toFixed(2)} s (${(1 / sampling).toFixed(2)} steps/s); ` +
      `tensors ${mem.numTensors} (${mem.numTensors - before >= 0 ? '+' : ''}${mem.numTensors - before} over the runs), ${(mem.numBytes / 2 ** 20).toFixed(1)} MiB`,
  );
  tf.dispose([tokens, mask, images, ...noise]);
  model.dispose();
}
