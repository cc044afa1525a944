import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PredictionType, clipRowsToFrames, framesToClipRows } from '@matryoshka-ts/core';
import { type BackendName, initBackend } from '@matryoshka-ts/backends';
import { SafetensorsFile, toFloat32, toNumbers } from '@matryoshka-ts/checkpoint';
import type { NestedUNet } from '@matryoshka-ts/nested-unet';
import {
  type Denoiser,
  type SamplerKind,
  applyThreshold,
  classifierFreeGuidance,
  clipRowsNetwork,
  networkDenoiser,
  predictX0,
  sample,
  stepFromPrediction,
  stepGammas,
  thresholdByName,
} from '@matryoshka-ts/samplers';
import { type LevelSchedules, levelSchedules, samplingGrid, squaredCosineSchedule } from '@matryoshka-ts/schedules';
import type { FixtureFolder } from '@matryoshka-ts/test-utils';
import {
  MODEL_FIXTURE_KINDS,
  type ParityOptions,
  levelFrames,
  levelTensor,
  modelFromFixture,
  officialLayout,
} from './model-parity.js';
import { forEachFixture } from './suite.js';

/** The `sampler` section of a fixture's config.json (see the fixture README). */
interface SamplerConfig {
  threshold_default: string;
  single_step: { t: number; s: number; variants: string[] };
  full_sample: {
    num_inference_steps: number;
    ddim_eta: number;
    timesteps: number[];
    results: Record<string, { guidance_scale: number; output_equals_final_level0?: boolean }>;
  };
  batch: number;
}

/**
 * Tolerances (fixture README: the official code reproduces its 5-step samples within 1e-5
 * across thread counts, and an independent float32 implementation should expect "about 1e-4").
 * - Single step from the stored v (no network): a handful of element-wise float32 operations on
 *   O(1) values with coefficients rounded once; the official code evaluates the same formulas in
 *   a different order, so results differ by a few ulps (~1e-6). 1e-5 leaves a margin and still
 *   catches any wrong coefficient (those move values by ≥ 1e-3).
 * - Network output and complete runs: float32 accumulation in a different summation order through
 *   every layer, repeated over 5 steps: 1e-4 absolute.
 */
const tol = { step: 1e-5, network: 1e-4 };

/**
 * Largest |ours − reference| over an NHWC tensor compared with an NCHW fixture array; a level of
 * `frames` > 1 holds each clip as one sample ([B, F·r, r, C], as the samplers see it).
 */
async function diffToFixture(ours: tf.Tensor4D, ref: Float32Array, frames = 1): Promise<number> {
  const nchw = tf.tidy(() => officialLayout(clipRowsToFrames(ours, frames), frames));
  const data = await nchw.data();
  nchw.dispose();
  if (data.length !== ref.length) throw new Error(`size ${data.length} vs fixture ${ref.length}`);
  let m = 0;
  for (let i = 0; i < data.length; i++) {
    const d = Math.abs(data[i] - ref[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

/** One schedule per level from config.json, level 0 first, as in the schedule parity suite. */
function fixtureSchedules(fixture: FixtureFolder): LevelSchedules {
  const { schedule } = fixture.config;
  const base = squaredCosineSchedule(schedule.num_diffusion_steps);
  return levelSchedules(base, schedule.level_scales, { power: schedule.shift_power, shifted: schedule.shifted });
}

/** `ddim_dynamic_if` → sampler `ddim`, threshold `dynamic_if`. */
function parseVariant(variant: string): { sampler: SamplerKind; threshold: string } {
  const m = /^(ddpm|ddim)_(.+)$/.exec(variant);
  if (!m) throw new Error(`unknown single-step variant '${variant}'`);
  return { sampler: m[1] as SamplerKind, threshold: m[2] };
}

/**
 * Sampler parity of every fixture folder with a sampler.safetensors on one backend: the single
 * step t → s from the stored v, the network output at time index t − 1, and the complete K-step
 * DDIM runs with and without guidance. Prints the measured maximum differences.
 */
export function samplerParitySuite(backend: Exclude<BackendName, 'auto'>, options: ParityOptions = {}): void {
  for (const kind of MODEL_FIXTURE_KINDS)
    forEachFixture(`sampler parity on ${backend}`, (fixture) => folderSuite(backend, fixture), kind, options.fixtures);
}

function folderSuite(backend: Exclude<BackendName, 'auto'>, fixture: FixtureFolder): void {
  {
    const samplerConfig = fixture.config.sampler as SamplerConfig | undefined;
    if (!existsSync(fixture.file('sampler')) || !samplerConfig) {
      const reason =
        `${fixture.name} has no sampler.safetensors (or no sampler section in config.json): ` +
        'sampler parity skipped';
      it('sampler fixture present', (ctx) => {
        console.warn(`[parity] ${reason}`);
        ctx.skip(reason);
      });
      return;
    }

    const levels = fixture.config.num_levels;
    const predictionType = fixture.config.prediction_type as PredictionType;
    const schedules = fixtureSchedules(fixture);
    const measured: Array<[string, number]> = [];
    let file: SafetensorsFile;
    let model: NestedUNet;
    const read = (name: string) => file.read(name);
    const scalar = (name: string) => toNumbers(read(name).data)[0];
    const ref = (name: string) => toFloat32(read(name).data);
    const frames = Array.from({ length: levels }, (_, n) => levelFrames(fixture, n));
    // The samplers hold a clip as one sample ([B, F·r, r, C]); clipRowsNetwork gives the model its frames.
    const images = (prefix: string) =>
      Array.from({ length: levels }, (_, n) =>
        tf.tidy(() => framesToClipRows(levelTensor(read(`${prefix}.level${n}`), frames[n]), frames[n])),
      );
    const network = (cond: { tokens: tf.Tensor3D; mask: tf.Tensor2D }, onCall?: (times: number[]) => void) =>
      clipRowsNetwork((x, times) => {
        onCall?.(times);
        return model.forward({ x, times, ...cond });
      }, frames);
    /** Compares one tensor per level with `<prefix>.levelN`, records and returns the largest difference. */
    const compare = async (label: string, ours: tf.Tensor4D[], prefix: string): Promise<number> => {
      expect(ours).toHaveLength(levels);
      let worst = 0;
      for (const [n, o] of ours.entries()) {
        const d = await diffToFixture(o, ref(`${prefix}.level${n}`), frames[n]);
        measured.push([`${label} level${n}`, d]);
        worst = Math.max(worst, d);
      }
      return worst;
    };
    const text = (suffix: '' | '_uncond') => ({
      tokens: tf.tensor3d(ref(`lm_outputs${suffix}`), read(`lm_outputs${suffix}`).shape as [number, number, number]),
      mask: tf.tensor2d(ref(`lm_mask${suffix}`), read(`lm_mask${suffix}`).shape as [number, number]),
    });

    beforeAll(async () => {
      await initBackend({ backend, quiet: true });
      file = SafetensorsFile.open(fixture.file('sampler'));
      model = modelFromFixture(fixture);
    });
    afterAll(() => {
      model?.dispose();
      file?.close();
      if (measured.length)
        console.log(
          `[parity] sampler ${fixture.name} on ${backend}, max |ours − official|:\n` +
            measured.map(([k, d]) => `  ${k}: ${d.toExponential(2)}`).join('\n'),
        );
    });

    it('config, file and schedules agree on levels, batch and the grid', () => {
      expect(schedules).toHaveLength(levels);
      expect(read('step.x_t.level0').shape[0]).toBe(samplerConfig.batch);
      expect(file.has(`step.x_t.level${levels - 1}`) && !file.has(`step.x_t.level${levels}`)).toBe(true);
      const { t, s } = samplerConfig.single_step;
      expect([scalar('step.t'), scalar('step.s')]).toEqual([t, s]);
      const grid = samplingGrid(
        samplerConfig.full_sample.num_inference_steps,
        fixture.config.schedule.num_diffusion_steps,
      );
      expect(grid).toEqual(toNumbers(read('sample.timesteps').data));
      expect(grid).toEqual(samplerConfig.full_sample.timesteps);
    });

    describe('single step t → s from the stored v (no network)', () => {
      const { t, s, variants } = samplerConfig.single_step;
      const thresholds = [...new Set(variants.map((v) => parseVariant(v).threshold))];

      it('γ_t, γ_s of every level equal the stored values exactly (float32 tables)', () => {
        for (let n = 0; n < levels; n++) {
          const { gammaT, gammaS } = stepGammas(schedules[n], t, s);
          expect(gammaT, `gamma_t level${n}`).toBe(scalar(`step.gamma_t.level${n}`));
          expect(gammaS, `gamma_s level${n}`).toBe(scalar(`step.gamma_s.level${n}`));
        }
      });

      for (const thr of thresholds) {
        it(`x̂0 with threshold '${thr}' at every level (≤ ${tol.step})`, async () => {
          const [xT, v] = [images('step.x_t'), images('step.v')];
          const x0 = xT.map((x, n) =>
            tf.tidy(() =>
              applyThreshold(
                predictX0(v[n], x, stepGammas(schedules[n], t, s).gammaT, predictionType),
                thresholdByName(thr),
              ),
            ),
          );
          expect(await compare(`step.x0.${thr}`, x0, `step.x0.${thr}`)).toBeLessThanOrEqual(tol.step);
          tf.dispose([...xT, ...v, ...x0]);
        });
      }

      for (const variant of variants) {
        const { sampler, threshold } = parseVariant(variant);
        const stepTitle =
          `x_s for ${variant}${sampler === 'ddpm' ? ' with the stored noise' : ' (η = 0)'} ` +
          `at every level (≤ ${tol.step})`;
        it(stepTitle, async () => {
          const [xT, v, z] = [images('step.x_t'), images('step.v'), images('step.noise')];
          const start = tf.memory().numTensors;
          const xS = stepFromPrediction(
            v,
            xT,
            t,
            s,
            { schedules, sampler, eta: 0, threshold: thresholdByName(threshold), predictionType },
            z,
          );
          expect(tf.memory().numTensors, 'only the new states').toBe(start + levels);
          expect(await compare(`step.x_s.${variant}`, xS, `step.x_s.${variant}`)).toBeLessThanOrEqual(tol.step);
          tf.dispose([...xT, ...v, ...z, ...xS]);
        });
      }
    });

    it(`network output at time index t − 1 equals step.v (≤ ${tol.network})`, async () => {
      const { t } = samplerConfig.single_step;
      const cond = text('');
      const xT = images('step.x_t');
      const calls: number[][] = [];
      const denoiser = networkDenoiser(network(cond, (times) => calls.push(times)));
      const v = denoiser(xT, t);
      expect(calls).toEqual([new Array(samplerConfig.batch).fill(t - 1)]);
      expect(await compare('step.v', v, 'step.v')).toBeLessThanOrEqual(tol.network);
      tf.dispose([...xT, ...v, cond.tokens, cond.mask]);
    });

    for (const [name, result] of Object.entries(samplerConfig.full_sample.results)) {
      const weight = result.guidance_scale;
      const runTitle =
        `complete ${samplerConfig.full_sample.num_inference_steps}-step run '${name}' ` +
        `(DDIM η = ${samplerConfig.full_sample.ddim_eta}, guidance ${weight}): ` +
        `step 1 and final state at every level (≤ ${tol.network})`;
      it(runTitle, async () => {
        const cond = text('');
        const uncond = text('_uncond');
        // Guidance: one network call on [x; x] with the unconditional text first.
        const doubled = {
          tokens: tf.concat([uncond.tokens, cond.tokens], 0) as tf.Tensor3D,
          mask: tf.concat([uncond.mask, cond.mask], 0) as tf.Tensor2D,
        };
        const denoiser: Denoiser =
          weight === 1
            ? networkDenoiser(network(cond))
            : classifierFreeGuidance(networkDenoiser(network(doubled)), weight);
        const init = images('sample.init');
        const grid = toNumbers(read('sample.timesteps').data);
        const states = new Map<number, tf.Tensor4D[]>();
        const start = tf.memory().numTensors;
        const output = sample(denoiser, init, grid, {
          schedules,
          sampler: 'ddim',
          eta: samplerConfig.full_sample.ddim_eta,
          threshold: thresholdByName(samplerConfig.threshold_default),
          predictionType,
          onStep: (i, total, _t, x) => {
            if (i === 0 || i === total - 1)
              states.set(
                i,
                x.map((l) => tf.clone(l)),
              );
          },
        });
        expect(tf.memory().numTensors, 'the run leaves only its outputs and the two kept states').toBe(
          start + 3 * levels,
        );
        expect(await compare(`sample.${name}.step1`, states.get(0)!, `sample.${name}.step1`)).toBeLessThanOrEqual(
          tol.network,
        );
        expect(
          await compare(`sample.${name}.final`, states.get(grid.length - 2)!, `sample.${name}.final`),
        ).toBeLessThanOrEqual(tol.network);
        if (result.output_equals_final_level0) {
          const d = await diffToFixture(output[0], ref(`sample.${name}.final.level0`), frames[0]);
          measured.push([`sample.${name} output (clamped) level0`, d]);
          expect(d).toBeLessThanOrEqual(tol.network);
        }
        tf.dispose([
          ...output,
          ...init,
          ...[...states.values()].flat(),
          cond.tokens,
          cond.mask,
          uncond.tokens,
          uncond.mask,
          doubled.tokens,
          doubled.mask,
        ]);
      });
    }
  }
}
