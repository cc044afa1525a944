// One rank of the data-parallel check in data-parallel.test.ts, started by `mpirun -np 2`:
// trains the micro preset's model for a few steps on its part of fixed batches, with gradients
// averaged over the ranks, and rank 0 writes the losses and weights as JSON to argv[2].
// Rank 1 starts from other weights: rank 0's broadcast must replace them.
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, initDistributed } from '@matryoshka-ts/backends';
import { NestedUNet } from '@matryoshka-ts/nested-unet';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders';
import { Rng } from '@matryoshka-ts/core';
import { DataParallel } from './data-parallel.js';
import { DP_CHECK, dpBatch, dpModelConfig, dpSchedules, dpStepOptions } from './data-parallel.check.js';
import { TrainStep } from './train-step.js';

const comm = await initDistributed();
try {
  await initBackend({ backend: 'cpu', quiet: true });
  const dp = new DataParallel(comm, DP_CHECK.bucketBytes);
  const model = new NestedUNet(dpModelConfig, { seed: comm.rank === 0 ? DP_CHECK.seed : DP_CHECK.seed + 1 });
  const step = new TrainStep(model, dpSchedules, dpStepOptions);
  await dp.broadcastVariables([...model.params.values()]);
  await dp.broadcastVariables([...step.ema!.values()]);
  const encoder = new HashedWordEncoder(DP_CHECK.encoder);
  const rng = new Rng(DP_CHECK.seed);
  const losses: number[] = [];
  const gradNorms: number[] = [];
  const B = DP_CHECK.batchPerRank;
  for (let s = 0; s < DP_CHECK.steps; s++) {
    const { images, captions } = dpBatch(s, B * comm.world);
    const mine = tf.slice(images, [comm.rank * B], [B]);
    const text = encoder.encode(captions.slice(comm.rank * B, (comm.rank + 1) * B));
    const result = await step.update(
      await dp.averageGradients(await step.computeGradients(mine, text, dp.partRng(rng))),
    );
    losses.push(result.loss);
    gradNorms.push(result.gradNorm);
    tf.dispose([images, mine, text.tokens, text.mask]);
  }
  await dp.checkSame(model.params.values(), 'weights');
  await dp.checkSame(step.ema!.values(), 'EMA weights');
  const dump = (m: Map<string, tf.Tensor>) => Object.fromEntries([...m].map(([k, v]) => [k, [...v.dataSync()]]));
  if (comm.rank === 0)
    writeFileSync(
      process.argv[2],
      JSON.stringify({ world: comm.world, losses, gradNorms, params: dump(model.params), ema: dump(step.ema!) }),
    );
  comm.finalize();
} catch (error) {
  process.stderr.write(`rank ${comm.rank}: ${(error as Error).stack}\n`);
  comm.abort(1);
}
