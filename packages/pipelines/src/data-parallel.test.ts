import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, nativeKernelInfo } from '@matryoshka-ts/backends';
import { Rng, SINGLE_PROCESS } from '@matryoshka-ts/core';
import { NestedUNet } from '@matryoshka-ts/nested-unet';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders';
import { DataParallel, batchPartRngs } from './data-parallel.js';
import { DP_CHECK, dpBatch, dpModelConfig, dpSchedules, dpStepOptions } from './data-parallel.check.js';
import { TrainStep } from './train-step.js';

import { MPI_ENV, hasMpirun, underCi } from '@matryoshka-ts/test-utils';

const mpirun = hasMpirun();
// The ranks reach MPI through the native addon: where it is not built, the check cannot run.
const mpi = mpirun && (await nativeKernelInfo()) !== undefined;

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

describe('batchPartRngs', () => {
  it('draws one seed from the run generator and gives each part its own stream', () => {
    const a = new Rng(1);
    const parts = batchPartRngs(a, 3).map((r) => r.nextUint32());
    expect(new Set(parts).size).toBe(3);
    // The run's generator advanced by exactly one draw, whatever the number of parts.
    const b = new Rng(1);
    b.nextUint32();
    expect(a.nextUint32()).toBe(b.nextUint32());
    // Part r is the same generator whichever rank (or the single-process reference) asks.
    expect(batchPartRngs(new Rng(1), 3)[2].nextUint32()).toBe(parts[2]);
  });
});

describe('DataParallel in one process', () => {
  it('averages over a world of 1 to the same gradients, loss and errors, and frees the inputs', async () => {
    const dp = new DataParallel(SINGLE_PROCESS, 64);
    const before = tf.memory().numTensors;
    const grads = new Map([
      ['a', tf.tensor([1, 2, 3])],
      [
        'b',
        tf.tensor([
          [4, 5],
          [6, 7],
        ]),
      ],
      ['c', tf.tensor([8])],
    ]);
    const out = await dp.averageGradients({ loss: 0.5, mse: [0.25, Number.NaN], grads });
    expect(out.loss).toBe(0.5);
    expect(out.mse[0]).toBe(0.25);
    expect(out.mse[1]).toBeNaN();
    expect([...out.grads.keys()]).toEqual(['a', 'b', 'c']);
    expect([...out.grads.get('b')!.dataSync()]).toEqual([4, 5, 6, 7]);
    expect(out.grads.get('b')!.shape).toEqual([2, 2]);
    expect(grads.get('a')!.isDisposed).toBe(true);
    // 64-byte buckets: [a, b] (28 bytes), then c alone would fit too; 32 bytes reduced in all.
    expect(dp.reducedBytes).toBe(32);
    tf.dispose([...out.grads.values()]);
    expect(tf.memory().numTensors).toBe(before);
    expect(dp.gather([1, 2])).toEqual([[1, 2]]);
    expect(dp.gatherPositions({ epoch: 2, cursor: 7 })).toEqual([{ epoch: 2, cursor: 7 }]);
    expect(dp.gatherPositions({ epoch: 0, cursor: 3, frame: 5 })).toEqual([{ epoch: 0, cursor: 3, frame: 5 }]);
    expect(dp.describeCost()).toMatch(/^1 ranks, all-reduce \d\.\d{3} s\/step$/);
    expect(dp.describeCost(1)).toMatch(/% of a step \(0\.0 MiB\)$/);
    const one = tf.tensor([1]);
    await expect(dp.checkSame([one], 'weights')).resolves.toBeUndefined();
    one.dispose();
  });
});

// CI installs openmpi-bin (tooling/scripts/native-libs.sh): there the check must run, not skip.
it.runIf(underCi())('mpirun is installed (CI)', () => expect(mpirun).toBe(true));

describe.runIf(mpi)('data-parallel training over MPI (mpirun -np 2)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mdm-dp-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('two ranks at batch B give the losses and weights of one process at batch 2B', async () => {
    const out = join(dir, 'ranks.json');
    const rank = fileURLToPath(new URL('./data-parallel.rank.ts', import.meta.url));
    execFileSync(
      'mpirun',
      ['--oversubscribe', '-np', '2', process.execPath, '--conditions=source', '--import', 'tsx', rank, out],
      { env: { ...process.env, ...MPI_ENV }, stdio: 'pipe', timeout: 120_000 },
    );
    const ranks = JSON.parse(readFileSync(out, 'utf8'));
    expect(ranks.world).toBe(2);

    // The reference: one process, batch 2B, the example drawn in the ranks' two parts.
    const model = new NestedUNet(dpModelConfig, { seed: DP_CHECK.seed });
    const step = new TrainStep(model, dpSchedules, dpStepOptions);
    const encoder = new HashedWordEncoder(DP_CHECK.encoder);
    const rng = new Rng(DP_CHECK.seed);
    const losses: number[] = [];
    const gradNorms: number[] = [];
    for (let s = 0; s < DP_CHECK.steps; s++) {
      const { images, captions } = dpBatch(s, 2 * DP_CHECK.batchPerRank);
      const text = encoder.encode(captions);
      const result = await step.run(images, text, batchPartRngs(rng, 2));
      losses.push(result.loss);
      gradNorms.push(result.gradNorm);
      tf.dispose([images, text.tokens, text.mask]);
    }
    // float32: a mean of two half-batch means against one mean over the batch, and the gradient
    // sums of the two halves added by MPI rather than inside one reduction: relative 1e-5.
    ranks.losses.forEach((loss: number, i: number) => expect(loss).toBeCloseTo(losses[i], 5));
    ranks.gradNorms.forEach((norm: number, i: number) =>
      expect(Math.abs(norm - gradNorms[i])).toBeLessThan(1e-5 * gradNorms[i]),
    );
    // Adam divides by √v, so a weight whose gradient is near 0 (mostly float32 rounding of the
    // sum over the batch) moves by up to lr whatever its size: rounding in another order can move
    // it differently. Bound: 1% of one step's lr (1e-3); measured 1.4e-6.
    let worst = 0;
    for (const [group, tensors] of [
      ['params', model.params],
      ['ema', step.ema!],
    ] as const) {
      for (const [name, t] of tensors) {
        const theirs: number[] = ranks[group][name];
        const ours = t.dataSync();
        expect(theirs.length).toBe(ours.length);
        for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(theirs[i] - ours[i]));
      }
    }
    expect(worst).toBeLessThan(1e-5);
    // …and the weights did move (the check is not of two untrained copies).
    const fresh = new NestedUNet(dpModelConfig, { seed: DP_CHECK.seed });
    const name = [...fresh.params.keys()][0];
    const moved = Math.max(
      ...fresh.params
        .get(name)!
        .dataSync()
        .map((v, i) => Math.abs(v - ranks.params[name][i])),
    );
    expect(moved).toBeGreaterThan(1e-4);
    step.dispose();
    model.dispose();
    fresh.dispose();
  }, 180_000);
});
