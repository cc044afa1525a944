import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PredictionType, clipRowsToFrames, framesToClipRows } from '@matryoshka-ts/core';
import { type BackendName, initBackend } from '@matryoshka-ts/backends';
import { SafetensorsFile, fromTorchLayout, toFloat32, toNumbers } from '@matryoshka-ts/checkpoint';
import {
  type LossTarget,
  type NoisyLevels,
  firstSamples,
  levelMse,
  lossTarget,
  lowResolutionTargets,
  mixedFractions,
  multiResolutionLoss,
  noiseLevels,
  predictedTarget,
  samplesPerLevel,
  vdmLossWeights,
} from '@matryoshka-ts/losses';
import { type NestedUNet, paramsFrom } from '@matryoshka-ts/nested-unet';
import { levelSchedules, squaredCosineSchedule } from '@matryoshka-ts/schedules';
import type { FixtureFolder } from '@matryoshka-ts/test-utils';
import { maxAbs, maxAbsDiff } from '@matryoshka-ts/test-utils';
import {
  MODEL_FIXTURE_KINDS,
  type ParityOptions,
  levelFrames,
  levelResolution,
  levelTensor,
  modelFromFixture,
  officialLayout,
} from './model-parity.js';
import { forEachFixture } from './suite.js';

// Training-loss parity against every fixture folder's loss.safetensors (see the fixture README,
// "loss.safetensors"): x_t is rebuilt from the stored x0, ε and γ, our model runs on it (reduced
// batches per level in mixed cases), and @matryoshka-ts/losses computes the loss.
//
// Tolerances:
// - mse.levelN, loss, loss_mean: 1e-4 absolute, relative above 1 (float32 means of squares carry
//   a relative error; our outputs differ from PyTorch's by ~1e-5, which moves a squared-error mean
//   by ≲ 2·√mse·1e-5). Dropped samples compare a zero prediction with the target: no network
//   involved, so 1e-5.
// - gradients: 1e-3 of the largest entry of each stored gradient (fixture README: PyTorch itself
//   moves by 1e-5 of it between thread counts; ours sums in other orders through a whole backward).
// - stored low-resolution x0: 1e-6 (float32 means of 4 values in [−1, 1]); γ: exact (table lookup).

const tol = { loss: 1e-4, dropped: 1e-5, gradient: 1e-3, pooled: 1e-6 };

type Settings = {
  prediction: PredictionType;
  target: LossTarget;
  weights: number[];
  mixedRatio?: string | number[];
  /** Samples each level sees: ⌊m_N·B⌋ from our samplesPerLevel. */
  seen: number[];
  /** config.json → samples_per_level, when given. */
  storedSeen?: number[];
  vdm: boolean;
  outputScale: number;
};

type CaseConfig = Record<string, unknown> & {
  samples_per_level?: number[];
  batch?: number;
  times?: number[];
  mixed_ratio_cumulative?: number[] | null;
};

const kinds = ['eps', 'x0', 'v'];

function kind(value: unknown, field: string): PredictionType {
  if (typeof value !== 'string' || !kinds.includes(value))
    throw new Error(`config.json ${field} = ${JSON.stringify(value)}: expected eps, x0 or v`);
  return value as PredictionType;
}

/** `[1, 1]`, `'16:4:1'` or null (all 1) → one number per level. */
function levelWeights(value: unknown, levels: number): number[] {
  if (value === null || value === undefined) return new Array<number>(levels).fill(1);
  const weights = typeof value === 'string' ? value.split(':').map(Number) : (value as number[]);
  if (weights.length !== levels || weights.some((w) => !Number.isFinite(w)))
    throw new Error(`multi_res_weights ${JSON.stringify(value)} for ${levels} levels`);
  return weights;
}

/** The case's settings: its own fields in config.json → loss.cases.<case>, else the folder's loss settings. */
function settingsOf(fixture: FixtureFolder, name: string): Settings {
  const loss = (fixture.config.loss ?? {}) as Record<string, unknown> & { cases?: Record<string, CaseConfig> };
  const own = loss.cases?.[name];
  if (!own) throw new Error(`${fixture.name}: config.json has no loss.cases.${name}`);
  const pick = (key: string) => (key in own ? own[key] : loss[key]);
  const levels = fixture.config.num_levels;
  const weights = levelWeights(pick('multi_res_weights'), levels);
  // use_double_loss false: only the highest resolution counts (the official code multiplies the rest by 0).
  if (pick('use_double_loss') === false) weights.fill(0, 1);
  const mixed = pick('mixed_ratio');
  const mixedRatio = mixed === null || mixed === undefined ? undefined : (mixed as string | number[]);
  const B = own.batch ?? own.times?.length;
  if (B === undefined) throw new Error(`${fixture.name}: config.json loss.cases.${name} gives neither batch nor times`);
  return {
    prediction: kind(pick('prediction_type') ?? fixture.config.prediction_type, 'prediction_type'),
    target: kind(pick('loss_target') ?? fixture.config.loss_target, 'loss_target') as LossTarget,
    weights,
    mixedRatio,
    seen: mixedRatio === undefined ? new Array<number>(levels).fill(B) : samplesPerLevel(mixedRatio, B),
    storedSeen: own.samples_per_level,
    vdm: pick('use_vdm_loss_weights') === true,
    outputScale: Number(pick('model_output_scale') ?? 0),
  };
}

/** Case prefixes (`plain`, `mixed`, …) of the tensors in loss.safetensors. */
function caseNames(path: string): string[] {
  const file = SafetensorsFile.open(path);
  try {
    return [...new Set(file.names.map((n) => n.split('.')[0]))];
  } finally {
    file.close();
  }
}

/** |ours − ref| ≤ within, relative to |ref| where |ref| > 1. */
function expectClose(ours: number, ref: number, within: number, what: string): void {
  expect(Math.abs(ours - ref), `${what}: ${ours} vs ${ref}`).toBeLessThanOrEqual(within * Math.max(1, Math.abs(ref)));
}

/** What one run of the loss (value and gradients) produced, read back to the CPU. */
type CaseResult = {
  mse: Float32Array[];
  perSample: Float32Array;
  lossMean: number;
  grads: Map<string, Float32Array>;
  /** Each level's output (the samples it sees), kept for the dropped-sample check. */
  outputs: tf.Tensor4D[];
  leaked: number;
};

/** Loss parity of every fixture folder with a loss.safetensors on one backend. */
export function lossParitySuite(backend: Exclude<BackendName, 'auto'>, options: ParityOptions = {}): void {
  for (const kind of MODEL_FIXTURE_KINDS)
    forEachFixture(`loss parity on ${backend}`, (fixture) => folderSuite(backend, fixture), kind, options.fixtures);
}

function folderSuite(backend: Exclude<BackendName, 'auto'>, fixture: FixtureFolder): void {
  {
    if (!existsSync(fixture.file('loss'))) {
      const reason = `${fixture.name} has no loss.safetensors: loss parity not checked for this folder`;
      console.warn(`[parity] ${reason}`);
      it('loss.safetensors is present', (ctx) => ctx.skip(reason));
      return;
    }
    let model: NestedUNet;
    let file: SafetensorsFile;
    beforeAll(async () => {
      await initBackend({ backend, quiet: true });
      model = modelFromFixture(fixture);
      file = SafetensorsFile.open(fixture.file('loss'));
    });
    afterAll(() => {
      model?.dispose();
      file?.close();
    });

    for (const name of caseNames(fixture.file('loss')))
      describe(`case ${name}`, () =>
        caseSuite(
          backend,
          fixture,
          name,
          () => model,
          () => file,
        ));
  }
}

function caseSuite(
  backend: string,
  fixture: FixtureFolder,
  name: string,
  getModel: () => NestedUNet,
  getFile: () => SafetensorsFile,
): void {
  const levels = fixture.config.num_levels;
  // A video level's clip is one sample for the loss: [B, F·r, r, C] (the model takes [B·F, r, r, C]).
  const frames = Array.from({ length: levels }, (_, n) => levelFrames(fixture, n));
  const clipRows = (tensor: string, n: number) =>
    tf.tidy(() => framesToClipRows(levelTensor(read(tensor), frames[n]), frames[n]));
  let settings: Settings;
  try {
    settings = settingsOf(fixture, name);
  } catch (error) {
    it('config.json describes the case', () => {
      throw error;
    });
    return;
  }
  const label = `${backend} ${fixture.name} ${name}:`;
  const read = (tensor: string) => getFile().read(`${name}.${tensor}`);
  const values = (tensor: string) => toFloat32(read(tensor).data);
  const schedule = fixture.config.schedule;
  const tables = levelSchedules(squaredCosineSchedule(schedule.num_diffusion_steps), schedule.level_scales, {
    power: schedule.shift_power,
    shifted: schedule.shifted,
  }).map((s) => s.gammasF32);

  let times: number[];
  let batch: NoisyLevels;
  let text: { tokens: tf.Tensor3D; mask: tf.Tensor2D };
  let result: Promise<CaseResult> | undefined;
  beforeAll(() => {
    times = toNumbers(read('times').data);
    const stored = {
      x0: Array.from({ length: levels }, (_, n) => clipRows(`x0.level${n}`, n)),
      eps: Array.from({ length: levels }, (_, n) => clipRows(`eps.level${n}`, n)),
      gamma: Array.from({ length: levels }, (_, n) => tf.tensor1d(values(`gamma.level${n}`))),
    };
    batch = noiseLevels(stored.x0, stored.eps, stored.gamma);
    tf.dispose(stored);
    const tokens = read('lm_outputs');
    const mask = read('lm_mask');
    text = {
      tokens: tf.tensor3d(toFloat32(tokens.data), tokens.shape as [number, number, number]),
      mask: tf.tensor2d(toFloat32(mask.data), mask.shape as [number, number]),
    };
  });
  afterAll(async () => {
    tf.dispose([batch, text, (await result)?.outputs ?? []]);
  });

  /**
   * One forward and backward pass: loss_mean's value and parameter gradients; mse, per-sample loss and outputs leave
   * the gradient scope through tf.keep.
   */
  const run = (): Promise<CaseResult> => {
    result ??= runOnce();
    return result;
  };
  const runOnce = async (): Promise<CaseResult> => {
    const model = getModel();
    const gradNames = getFile()
      .names.filter((n) => n.startsWith(`${name}.grad.`))
      .map((n) => n.slice(`${name}.grad.`.length));
    const before = tf.memory().numTensors;
    const inputs = firstSamples(batch.xt, settings.seen);
    const sampleWeights = settings.vdm ? vdmLossWeights(tables[0], times) : undefined;
    let kept: { mse: tf.Tensor1D[]; perSample: tf.Tensor1D; outputs: tf.Tensor4D[] } | undefined;
    const { value, grads } = tf.valueAndGrads((...params: tf.Tensor[]) => {
      const P = paramsFrom(new Map([...model.params, ...gradNames.map((n, i) => [n, params[i]] as const)]));
      const x = inputs.map((t, n) => clipRowsToFrames(t, frames[n]));
      const outputs = model.forward({ x, times, ...text }, { params: P }).map((o, n) => framesToClipRows(o, frames[n]));
      const { prediction, target, weights, mixedRatio } = settings;
      const loss = multiResolutionLoss(outputs, batch, { prediction, target, weights, mixedRatio, sampleWeights });
      kept = {
        mse: loss.mse.map((m) => tf.keep(m)),
        perSample: tf.keep(loss.perSample),
        outputs: outputs.map((o) => tf.keep(o)),
      };
      return loss.loss;
    })(
      gradNames.map((n) => {
        const p = model.params.get(n);
        if (!p) throw new Error(`${name}.grad.${n} names no parameter of the model`);
        return p;
      }),
    );
    const out = kept!;
    const read = async (t: tf.Tensor) => Float32Array.from(await t.data());
    const done: CaseResult = {
      mse: await Promise.all(out.mse.map(read)),
      perSample: await read(out.perSample),
      lossMean: (await value.data())[0],
      grads: new Map(await Promise.all(gradNames.map(async (n, i) => [n, await read(grads[i])] as const))),
      outputs: out.outputs,
      leaked: 0,
    };
    tf.dispose([value, grads, out.mse, out.perSample, inputs]);
    done.leaked = tf.memory().numTensors - before - out.outputs.length;
    return done;
  };

  it('settings: samples_per_level and the cumulative fractions are ours, a supported configuration', () => {
    expect(settings.seen[levels - 1], 'batch in config.json = stored times').toBe(read('times').shape[0]);
    if (settings.storedSeen) expect(settings.seen).toEqual(settings.storedSeen);
    const cumulative = (fixture.config.loss as { cases: Record<string, CaseConfig> }).cases[name]
      .mixed_ratio_cumulative;
    // Printed with ~3 decimals in config.json ([0.667, 1.0]): within 1e-3.
    if (settings.mixedRatio !== undefined && cumulative)
      expect(maxAbsDiff(mixedFractions(settings.mixedRatio), cumulative)).toBeLessThanOrEqual(1e-3);
    expect(settings.outputScale, 'model_output_scale (tanh squashing) is not implemented').toBe(0);
  });

  const pooledTitle =
    'stored low-resolution x0 is the previous level average-pooled, or its first frame ' + `(≤ ${tol.pooled})`;
  it(pooledTitle, async () => {
    const resolutions = Array.from({ length: levels }, (_, n) => levelResolution(fixture, n));
    const top = clipRowsToFrames(batch.x0[0], frames[0]);
    const ours = lowResolutionTargets(top, resolutions, 'avgpool', frames);
    for (let n = 0; n < levels; n++) {
      const mine = officialLayout(ours[n], frames[n]);
      expect(maxAbsDiff(await mine.data(), values(`x0.level${n}`)), `x0.level${n}`).toBeLessThanOrEqual(
        n === 0 ? 0 : tol.pooled,
      );
      mine.dispose();
    }
    tf.dispose(ours);
    if (top !== batch.x0[0]) top.dispose();
  });

  it('stored γ is each level’s float32 table at times + 1 (exact)', () => {
    for (let n = 0; n < levels; n++)
      expect(Array.from(values(`gamma.level${n}`)), `gamma.level${n}`).toEqual(times.map((t) => tables[n][t + 1]));
  });

  it(`mse.levelN of the samples each level sees (≤ ${tol.loss}, relative above 1)`, async () => {
    const { mse } = await run();
    const report: string[] = [];
    for (let n = 0; n < levels; n++) {
      const ref = values(`mse.level${n}`);
      expect(mse[n].length).toBe(settings.seen[n]);
      mse[n].forEach((v, i) => expectClose(v, ref[i], tol.loss, `mse.level${n}[${i}]`));
      report.push(`level${n} ${maxAbsDiff(mse[n], ref.slice(0, settings.seen[n])).toExponential(2)}`);
    }
    console.info(`[parity] ${label} mse max |Δ|: ${report.join(', ')}`);
  });

  if (settings.seen.some((b) => b < settings.seen[levels - 1])) {
    const droppedTitle =
      'mse.levelN of the samples a level drops: the zero-padded prediction against the target ' + `(≤ ${tol.dropped})`;
    it(droppedTitle, async () => {
      const { outputs } = await run();
      for (let n = 0; n < levels; n++) {
        const B = batch.x0[n].shape[0];
        const seen = settings.seen[n];
        if (seen === B) continue;
        // The official pipeline runs every sample's x_t and zero-pads the level's network output.
        const padded = tf.tidy(() => {
          const out = tf.pad(outputs[n], [
            [0, B - seen],
            [0, 0],
            [0, 0],
            [0, 0],
          ]) as tf.Tensor4D;
          return levelMse(
            predictedTarget(out, batch.xt[n], batch.gamma[n], settings.prediction, settings.target),
            lossTarget(settings.target, batch.x0[n], batch.eps[n], batch.gamma[n]),
          );
        });
        // The README's other reading ("a zero prediction" of the target itself): mean of target².
        const zeroTarget = tf.tidy(() => {
          const t = lossTarget(settings.target, batch.x0[n], batch.eps[n], batch.gamma[n]);
          return levelMse(t, tf.zerosLike(t));
        });
        const ref = values(`mse.level${n}`);
        const [a, b] = [await padded.data(), await zeroTarget.data()];
        for (let i = seen; i < B; i++) {
          const dPadded = Math.abs(a[i] - ref[i]) / Math.max(1, Math.abs(ref[i]));
          const dTarget = Math.abs(b[i] - ref[i]) / Math.max(1, Math.abs(ref[i]));
          console.info(
            `[parity] ${label} mse.level${n}[${i}] (dropped): zero network output ${dPadded.toExponential(2)}, ` +
              `zero ${settings.target}-prediction ${dTarget.toExponential(2)}`,
          );
          expect(
            Math.min(dPadded, dTarget),
            `mse.level${n}[${i}] = ${ref[i]}: ours ${a[i]} (zero output) / ${b[i]} (zero target prediction)`,
          ).toBeLessThanOrEqual(tol.dropped);
        }
        tf.dispose([padded, zeroTarget]);
      }
    });
  }

  it(`loss [B] and loss_mean (≤ ${tol.loss}, relative above 1)`, async () => {
    const { perSample, lossMean } = await run();
    const ref = values('loss');
    expect(perSample.length).toBe(ref.length);
    perSample.forEach((v, i) => expectClose(v, ref[i], tol.loss, `loss[${i}]`));
    expectClose(lossMean, values('loss_mean')[0], tol.loss, 'loss_mean');
    console.info(
      `[parity] ${label} loss max |Δ| ${maxAbsDiff(perSample, ref).toExponential(2)}, ` +
        `loss_mean |Δ| ${Math.abs(lossMean - values('loss_mean')[0]).toExponential(2)}`,
    );
  });

  const gradientTitle =
    `∂loss_mean/∂param for every stored gradient (≤ ${tol.gradient} of its largest entry), ` + 'no tensors leaked';
  it(gradientTitle, async () => {
    const { grads, leaked } = await run();
    const specs = new Map(getModel().specs.map((s) => [s.name, s]));
    expect(grads.size, 'the case stores gradients').toBeGreaterThan(0);
    let worst = 0;
    for (const [param, ours] of grads) {
      const ref = fromTorchLayout(specs.get(param)!, values(`grad.${param}`));
      expect(maxAbs(ref), `grad.${param} is not zero`).toBeGreaterThan(0);
      expect(maxAbsDiff(ours, ref), `grad.${param}`).toBeLessThanOrEqual(tol.gradient * maxAbs(ref));
      worst = Math.max(worst, maxAbsDiff(ours, ref) / maxAbs(ref));
    }
    console.info(`[parity] ${label} ${grads.size} gradients: max |Δ| / max |ref| ${worst.toExponential(2)}`);
    expect(leaked, 'tensors left by the loss and its gradients').toBe(0);
  });
}
