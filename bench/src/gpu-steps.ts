// One backend's side of the GPU check (gpu-check.ts): times the training step (the pipelines'
// TrainStep, as `pnpm bench` times it: forward, multi-resolution loss, backward, Adam) and one
// sampling step (a DDPM step of every level, read back) of one model in this process, and prints
// one JSON line. Steps are timed back to back and the time divided by their count, with one read
// of a weight after the last (a GPU's queue runs in order: that read waits for every step's
// update), so an update still in flight when `run` returns is counted.
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@matryoshka-ts/core';
import { type BackendName, initBackend } from '@matryoshka-ts/backends';
import { NestedUNet } from '@matryoshka-ts/nested-unet';
import { type TrainConfigInput, levelSchedulesOf, modelConfigOf, parseTrainConfig } from '@matryoshka-ts/pipelines';
import { networkDenoiser, sampleStep } from '@matryoshka-ts/samplers';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders';
import { benchTrainStep } from './bench-step.js';
import { SWEEP_MODELS, benchModel } from './sweep-models.js';

/**
 * `cc12m-64`: the official cc12m_64x64 UNet at full size (MDM-S64: [256, 512, 768] channels,
 * [2, 2, 2] res blocks, [0, 1, 5] attention layers, T = 1024, micro-conditioning), with text
 * features as wide as FLAN-T5 XL's (2048, from the offline hashed-word encoder: the step's cost is
 * the same) and the official unmasked cross-attention: 461 M parameters. Too large for the wasm
 * heap (4 GiB) that `native` computes in, with Adam's state; the check times it on webgpu only.
 */
const cc12m64: TrainConfigInput = {
  model: 'cc12m-64',
  data: { skinTones: false },
  conditioning: { kind: 'text', encoder: { width: 2048, maxTokens: 16 } },
  phases: [{ resolution: 64, batchSize: 8, steps: 1 }],
};

/** The models the check can time: the train presets, the sweep's, and the full `cc12m-64`. */
export function gpuCheckModel(name: string): TrainConfigInput {
  return name === 'cc12m-64' ? cc12m64 : (SWEEP_MODELS[name] ?? benchModel(name));
}

/** What `timeSteps` prints. */
export interface StepTimes {
  backend: string;
  description: string;
  model: string;
  batch: number;
  params: number;
  /** Seconds per training step and per sampling step. */
  train_step_s: number;
  sample_step_s: number;
  repeats: number;
  /** Seconds to build the model (random weights) and for the first, warm-up, steps (shader compiles). */
  build_s: number;
  warmup_train_s: number;
  warmup_sample_s: number;
  tf_memory_mib: number;
}

/** Times `repeats` training steps and `repeats` sampling steps of `modelName` at `batch` on `backend`. */
export async function timeSteps(
  backend: string,
  modelName: string,
  batch: number,
  repeats: number,
): Promise<StepTimes> {
  const info = await initBackend({ backend: backend as BackendName, quiet: true });
  const t0 = performance.now();
  const config = parseTrainConfig(gpuCheckModel(modelName));
  const model = new NestedUNet(modelConfigOf(config), { seed: 1 });
  const levels = model.config.levels;
  const schedules = levelSchedulesOf(config);
  const rng = new Rng(2);
  const { tokens, mask } = new HashedWordEncoder(config.conditioning.encoder).encode(
    new Array(batch).fill('grinning face with big eyes'),
  );
  const side = levels[0].resolution;
  const images = tf.tidy(() => tf.clipByValue(rng.normalTensor([batch, side, side, 3]), -1, 1)) as tf.Tensor4D;
  const step = benchTrainStep(model, schedules);
  const buildS = (performance.now() - t0) / 1000;
  const probe = model.params.values().next().value as tf.Variable;
  /** Waits for everything queued so far: a read of one number computed after it. */
  const sync = async () => {
    const s = tf.sum(probe);
    await s.data();
    s.dispose();
  };
  const noise = levels.map((l) => rng.normalTensor([batch, l.resolution, l.resolution, 3]) as tf.Tensor4D);
  const denoiser = networkDenoiser((x, times) => model.forward({ x, times, tokens, mask }));
  const train = async () => {
    await step.run(images, { tokens, mask }, rng);
  };
  const sample = async () => {
    const next = sampleStep(denoiser, noise, 600, 596, { schedules, sampler: 'ddpm', rng });
    await Promise.all(next.map((t) => t.data()));
    tf.dispose(next);
  };
  /** Seconds for the warm-up (two steps: Adam's slots, shader compiles) and then per timed step. */
  const time = async (f: () => Promise<void>): Promise<[number, number]> => {
    const w0 = performance.now();
    await f();
    await f();
    await sync();
    const start = performance.now();
    for (let i = 0; i < repeats; i++) await f();
    await sync();
    return [(start - w0) / 1000, (performance.now() - start) / 1000 / repeats];
  };
  const [warmupTrain, trainS] = await time(train);
  const [warmupSample, sampleS] = await time(sample);
  const result: StepTimes = {
    backend: info.name,
    description: info.description,
    model: modelName,
    batch,
    params: model.paramCount,
    train_step_s: Number(trainS.toFixed(4)),
    sample_step_s: Number(sampleS.toFixed(4)),
    repeats,
    build_s: Number(buildS.toFixed(1)),
    warmup_train_s: Number(warmupTrain.toFixed(1)),
    warmup_sample_s: Number(warmupSample.toFixed(1)),
    tf_memory_mib: Number((tf.memory().numBytes / 2 ** 20).toFixed(1)),
  };
  tf.dispose([images, tokens, mask, ...noise]);
  step.dispose();
  model.dispose();
  return result;
}
