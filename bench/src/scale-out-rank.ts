// One rank of `pnpm bench:scale-out` (started alone, or by mpirun -np N): times the full
// data-parallel training step of a training preset's model at a per-rank batch — this rank's
// gradients, the barrier where ranks wait for the slowest, the gradient all-reduce
// (DataParallel.averageGradients: 25 MiB buckets, averaged), then clipping, Adam and EMA — and rank
// 0 prints one JSON line with medians over the repeats.
//   node --conditions=source --import tsx bench/src/scale-out-rank.ts [preset=emoji] [batch=8] [repeats=5]
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@matryoshka-ts/core';
import { initBackend, initDistributed } from '@matryoshka-ts/backends';
import { NestedUNet } from '@matryoshka-ts/nested-unet';
import {
  DataParallel,
  TRAIN_PRESETS,
  TrainStep,
  levelSchedulesOf,
  lossOptionsOf,
  modelConfigOf,
  parseTrainConfig,
} from '@matryoshka-ts/pipelines';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders';
import { median } from './machine.js';

const [presetName = 'emoji', batchArg = '8', repeatsArg = '5'] = process.argv.slice(2);
const batch = Number(batchArg);
const repeats = Number(repeatsArg);
const comm = await initDistributed();
const info = await initBackend({ backend: 'native', quiet: true });
const config = parseTrainConfig(TRAIN_PRESETS[presetName]);
const model = new NestedUNet(modelConfigOf(config), { seed: 1 });
const step = new TrainStep(model, levelSchedulesOf(config), {
  loss: lossOptionsOf(config, model.levels.length),
  optimizer: { ...config.optimizer, warmupSteps: 0 },
  ema: config.ema,
});
const dp = new DataParallel(comm);
await dp.broadcastVariables([...model.params.values()]);
const r = model.levels[0].resolution;
const rng = new Rng(2 + comm.rank);
const { tokens, mask } = new HashedWordEncoder(config.conditioning.encoder).encode(new Array(batch).fill('red heart'));
const images = tf.clipByValue(rng.normalTensor([batch, r, r, 3]), -1, 1) as tf.Tensor4D;
const seconds = (t0: number) => (performance.now() - t0) / 1000;

const rows: { step: number; compute: number; wait: number; reduce: number }[] = [];
for (let i = 0; i <= repeats; i++) {
  const t0 = performance.now();
  const gradients = await step.computeGradients(images, { tokens, mask }, rng);
  const computed = performance.now();
  comm.barrier();
  const joined = performance.now();
  // One process runs the step as the trainer does, without the all-reduce's copies.
  const averaged = comm.world > 1 ? await dp.averageGradients(gradients) : gradients;
  const reduced = performance.now();
  await step.update(averaged);
  // The first step warms up (Adam's slots, kernel plans).
  if (i > 0)
    rows.push({
      step: seconds(t0),
      compute: (computed - t0) / 1000,
      wait: (joined - computed) / 1000,
      reduce: (reduced - joined) / 1000,
    });
}
const bytes = dp.reducedSteps ? dp.reducedBytes / dp.reducedSteps : 4 * model.paramCount;
// The reduction alone, on a buffer of the gradients' size, every rank joined first: the bandwidth here.
const buffer = new Float32Array(bytes / 4);
const alone: number[] = [];
for (let i = 0; i < repeats; i++) {
  comm.barrier();
  const t0 = performance.now();
  comm.allReduce(buffer);
  alone.push(seconds(t0));
}
const of = (key: keyof (typeof rows)[0]) => median(rows.map((row) => row[key]));
if (comm.rank === 0)
  console.log(
    JSON.stringify({
      world: comm.world,
      backend: info.description,
      preset: presetName,
      params: model.paramCount,
      batch_per_rank: batch,
      step_s: of('step'),
      images_per_s: (comm.world * batch) / of('step'),
      compute_s: of('compute'),
      wait_s: of('wait'),
      allreduce_s: of('reduce'),
      allreduce_share: of('reduce') / of('step'),
      allreduce_alone_s: median(alone),
      bytes_per_step: bytes,
      allreduce_gbps: comm.world > 1 ? bytes / median(alone) / 1e9 : null,
      repeats,
    }),
  );
comm.finalize();
