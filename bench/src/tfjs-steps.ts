// One tfjs backend's side of `pnpm bench` and `pnpm bench:steps`: times the training step (the pipelines' TrainStep:
// forward, multi-resolution loss, backward, Adam; no clipping or EMA, as the PyTorch reference)
// and the sampling step (one DDPM step of all levels) of a training preset's or sweep model's
// (sweep-models.ts) full model, as bench/torch/mdm_reference.py --bench does in PyTorch, and prints
// one JSON line. Run by bench/src/bench.ts in a fresh process per measurement.
//   node --conditions=source --import tsx bench/src/tfjs-steps.ts <backend> [preset] [batch] [repeats]
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@matryoshka-ts/core';
import { type BackendName, initBackend, nativeKernelInfo } from '@matryoshka-ts/backends';
import { NestedUNet } from '@matryoshka-ts/nested-unet';
import { levelSchedulesOf, modelConfigOf, parseTrainConfig } from '@matryoshka-ts/pipelines';
import { networkDenoiser, sampleStep } from '@matryoshka-ts/samplers';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders';
import { benchTrainStep } from './bench-step.js';
import { benchModel } from './sweep-models.js';

const [backend = 'native', presetName = 'emoji', batchArg = '8', repeatsArg = '3'] = process.argv.slice(2);
const batch = Number(batchArg);
const repeats = Number(repeatsArg);
const info = await initBackend({ backend: backend as BackendName, quiet: true });
const config = parseTrainConfig(benchModel(presetName));
const model = new NestedUNet(modelConfigOf(config), { seed: 1 });
const levels = model.config.levels;
const schedules = levelSchedulesOf(config);
const rng = new Rng(2);
const { tokens, mask } = new HashedWordEncoder(config.conditioning.encoder).encode(
  new Array(batch).fill('grinning face with big eyes'),
);
const images = tf.clipByValue(
  rng.normalTensor([batch, levels[0].resolution, levels[0].resolution, 3]),
  -1,
  1,
) as tf.Tensor4D;
const step = benchTrainStep(model, schedules);
const trainStep = () => step.run(images, { tokens, mask }, rng);
const noise = levels.map((l) => rng.normalTensor([batch, l.resolution, l.resolution, 3]) as tf.Tensor4D);
const denoiser = networkDenoiser((x, times) => model.forward({ x, times, tokens, mask }));
// Read back asynchronously, as generate does (every backend; WebGPU in Node has no synchronous read).
const sampleOnce = async () => {
  const next = sampleStep(denoiser, noise, 600, 596, { schedules, sampler: 'ddpm', rng });
  await Promise.all(next.map((t) => t.data()));
  tf.dispose(next);
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const time = async (f: () => Promise<unknown>) => {
  await f(); // warm-up (also creates Adam's slots)
  const ts: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await f();
    ts.push((performance.now() - t0) / 1000);
  }
  return median(ts);
};
const trainS = await time(trainStep);
const tensorsBefore = tf.memory().numTensors;
await trainStep();
const tensorsAfter = tf.memory().numTensors;
const sampleS = await time(sampleOnce);
console.log(
  JSON.stringify({
    backend: info.name,
    description: info.description,
    preset: presetName,
    batch,
    params: model.paramCount,
    train_step_s: Number(trainS.toFixed(4)),
    sample_step_s: Number(sampleS.toFixed(4)),
    repeats,
    tensors_per_step: tensorsAfter - tensorsBefore,
    tf_memory_mib: Number((tf.memory().numBytes / 2 ** 20).toFixed(1)),
    peak_rss_mib: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
    // Which oneDNN implementation each convolution direction ran with, or why it declined.
    ...(info.name === 'native' ? { onednn_implementations: (await nativeKernelInfo())?.onednnImplementations } : {}),
  }),
);
