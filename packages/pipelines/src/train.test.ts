import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { type TrainConfigInput, parseTrainConfig } from './config.js';
import { TRAIN_PRESETS } from './train-presets.js';
import { openRun } from './open-run.js';
import { learningRate } from './optim.js';
import { listSnapshots, loadCheckpoint } from './run-checkpoint.js';
import type { StepMetrics } from './run-log.js';
import { train } from './train.js';

// The pipelines run on the active backend; the deterministic pure-JS cpu backend here.
beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

// The micro preset (2 levels, 8 → 4 px) on the pure-JS cpu backend (deterministic); the resumed run
// below crosses its phase boundary.
const micro: TrainConfigInput = { ...TRAIN_PRESETS.micro, backend: 'cpu' };

const dirs: string[] = [];
const tempRun = () => {
  const d = mkdtempSync(join(tmpdir(), 'mdm-train-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const losses = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as StepMetrics)
    .map((m) => [m.step, m.loss]);

describe('train', () => {
  it('a run stopped at step N and resumed gives exactly the losses of one that never stopped', async () => {
    const config = parseTrainConfig(micro);
    const whole = tempRun();
    await train(config, { out: whole, steps: 6 });
    const split = tempRun();
    await train(config, { out: split, steps: 4 });
    expect(loadCheckpoint(join(split, 'checkpoint.safetensors')).progress).toMatchObject({
      step: 4,
      phase: 1,
      phaseStep: 1,
    });
    await train(config, { out: split, resume: true, steps: 6 });
    expect(losses(whole)).toHaveLength(6);
    expect(losses(split)).toEqual(losses(whole));
    for (const file of ['checkpoint.safetensors', 'config.json', 'loss.svg', 'samples.png', 'metrics.jsonl'])
      expect(existsSync(join(split, file)), file).toBe(true);
    const png = readFileSync(join(split, 'samples.png'));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
  }, 300_000);

  it('keeps EMA snapshots every snapshotEvery steps that openRun samples from, across phases', async () => {
    const dir = tempRun();
    await train(parseTrainConfig({ ...micro, snapshotEvery: 2 }), { out: dir, steps: 5 });
    const snaps = listSnapshots(dir);
    expect(snaps.map((s) => s.step)).toEqual([2, 4]);
    // Step 2 is in the 4 px phase (one level), step 4 in the 8 px phase (two levels).
    const early = await openRun(snaps[0].path);
    expect(early.resolutions).toEqual([4]);
    expect(early.progress.step).toBe(2);
    early.dispose();
    const late = await openRun(snaps[1].path);
    expect(late.resolutions).toEqual([8, 4]);
    const saved = loadCheckpoint(snaps[1].path);
    expect(saved.values.params.size).toBe(0);
    const [name, values] = [...saved.values.ema][0];
    expect(Float32Array.from(late.model.params.get(name)!.dataSync())).toEqual(values);
    late.dispose();
    await expect(openRun(snaps[1].path, { ema: false })).rejects.toThrow(/no raw weights/);
  }, 300_000);

  it("with decay 'cosine', each phase warms up and falls to the floor at its own last step", async () => {
    const dir = tempRun();
    const phases = [
      { resolution: 4, batchSize: 2, steps: 4 },
      { resolution: 8, batchSize: 2, steps: 6 },
    ];
    const optimizer = { lr: 1e-3, warmupSteps: 2, decay: 'cosine', decayFloor: 0.1 } as const;
    await train(parseTrainConfig({ ...micro, optimizer, phases }), { out: dir });
    const lrs = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as StepMetrics).lr);
    // learningRate's closed form (optim.test.ts) per phase: update n of a phase of S steps.
    const expected = phases.flatMap(({ steps }) =>
      Array.from({ length: steps }, (_, i) => learningRate(i + 1, 1e-3, 2, { steps, floor: 0.1 })),
    );
    expect(lrs.length).toBe(10);
    lrs.forEach((lr, i) => expect(lr).toBeCloseTo(expected[i], 12));
    expect(lrs[3]).toBeCloseTo(1e-4, 12); // the first phase's last step is at the floor
    expect(lrs[4]).toBeCloseTo(5e-4, 12); // the second warms up again
  }, 300_000);

  it('keeps the number of live tensors flat across 20 training steps', async () => {
    const counts: number[] = [];
    await train(parseTrainConfig({ ...micro, phases: [{ resolution: 8, batchSize: 2, steps: 20 }] }), {
      out: tempRun(),
      onStep: (_m, live) => counts.push(live),
    });
    expect(counts).toHaveLength(20);
    // Adam allocates its moment estimates during the first update; from then on nothing grows.
    expect(new Set(counts.slice(1))).toEqual(new Set([counts[1]]));
  }, 300_000);

  it('skips non-finite steps, then stops with a clear message and leaves the last good checkpoint intact', async () => {
    const dir = tempRun();
    // A learning rate of 1e30 throws the weights to ±1e27 after the first update, so every later loss overflows.
    const config = parseTrainConfig({
      ...micro,
      optimizer: { lr: 1e30, warmupSteps: 0 },
      phases: [{ resolution: 8, batchSize: 2, steps: 50 }],
      checkpointEvery: 1,
      maxBadSteps: 3,
    });
    await expect(train(config, { out: dir })).rejects.toThrow(
      /3 non-finite losses in a row at step \d+: stopping\. The last good checkpoint .* is intact/,
    );
    const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as StepMetrics);
    const skipped = rows.filter((r) => r.skipped);
    expect(skipped.length).toBe(3);
    const last = loadCheckpoint(join(dir, 'checkpoint.safetensors'));
    expect(last.progress.step).toBe(rows.length - 3);
    expect(last.progress.badInARow).toBe(0);
  }, 300_000);
});

describe('config', () => {
  it('rejects a bad config before any work, naming the field', () => {
    expect(() => parseTrainConfig({ ...micro, optimizer: { lr: -1 } })).toThrow(/config: optimizer\.lr:/);
    expect(() => parseTrainConfig({ ...micro, phases: [{ resolution: 12, batchSize: 2, steps: 1 }] })).toThrow(
      /phases\.0\.resolution: 12 is not a level of the model \(8, 4\)/,
    );
    expect(() => parseTrainConfig({ ...micro, conditioning: { kind: 'labels' } })).toThrow(
      /labels but the model has no label conditioning/,
    );
    expect(() => parseTrainConfig({ ...micro, colour: 'red' })).toThrow(/config: /);
  });
});
