import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { type Schedule, samplingGrid, shiftSchedule, squaredCosineSchedule } from '@matryoshka-ts/schedules';
import { type Denoiser, classifierFreeGuidance } from './denoiser.js';
import { type SampleOptions, sample, sampleAsync, sampleStep, stepFromPrediction } from './sample.js';
import { DYNAMIC_DEEPFLOYD } from './threshold.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

// Two levels as in a 2-level MDM: level 0 (8×8) with the SNR shifted by 4, level 1 (4×4) unshifted.
const base = squaredCosineSchedule();
const schedules: Schedule[] = [shiftSchedule(base, 4), base];
const shapes: Array<[number, number, number, number]> = [
  [2, 8, 8, 3],
  [2, 4, 4, 3],
];

/** Clean images in (−1, 1) and N(0,1) starting noise per level, as plain arrays. */
function problem(seed: number): { x0: Float32Array[]; init: Float32Array[] } {
  const rng = new Rng(seed);
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  return {
    x0: sizes.map((n) => Float32Array.from({ length: n }, () => 2 * rng.uniform() - 1)),
    init: sizes.map((n) => rng.normals(n)),
  };
}

const tensors = (data: Float32Array[]) => data.map((d, n) => tf.tensor4d(d, shapes[n]));

/** A denoiser that knows x0 and returns the exact prediction of the given type at each level's γ_t. */
function perfect(x0: tf.Tensor4D[], type: 'x0' | 'v' | 'eps', calls: number[] = []): Denoiser {
  return (x, t) => {
    calls.push(t);
    return tf.tidy(() =>
      x.map((xt, n) => {
        const g = schedules[n].gammasF32[t];
        if (type === 'x0') return tf.clone(x0[n]);
        const eps = tf.div(tf.sub(xt, tf.mul(Math.sqrt(g), x0[n])), Math.sqrt(1 - g));
        // v = √γ·ε − √(1−γ)·x0
        return (
          type === 'eps' ? eps : tf.sub(tf.mul(Math.sqrt(g), eps), tf.mul(Math.sqrt(1 - g), x0[n]))
        ) as tf.Tensor4D;
      }),
    );
  };
}

describe('DDIM η = 0 with a perfect predictor', () => {
  for (const K of [5, 50]) {
    it(`x0-prediction on the official ${K}-step grid recovers x0 exactly at s = 0`, () => {
      const { x0, init } = problem(K);
      const [clean, noise] = [tensors(x0), tensors(init)];
      const out = sample(perfect(clean, 'x0'), noise, samplingGrid(K), {
        schedules,
        sampler: 'ddim',
        eta: 0,
        threshold: 'none',
        predictionType: 'x0',
      });
      // s = 0: γ_s = 1, so x_s = 1·x̂0 + 0·ε̂ — bit for bit.
      out.forEach((o, n) => expect(Array.from(o.dataSync()), `level ${n}`).toEqual(Array.from(x0[n])));
      tf.dispose([...out, ...clean, ...noise]);
    });
  }

  for (const type of ['v', 'eps'] as const) {
    it(`${type}-prediction recovers x0 at s = 0 to float32 accuracy`, () => {
      const { x0, init } = problem(9);
      const [clean, noise] = [tensors(x0), tensors(init)];
      const out = sample(perfect(clean, type), noise, samplingGrid(10), {
        schedules,
        sampler: 'ddim',
        threshold: 'clip',
        predictionType: type,
      });
      // Each step rebuilds x̂0 from x_t and the prediction (errors ~1e-7 per op, amplified by
      // 1/√γ_t ≤ 20 for ε at the noisiest grid time on the shifted level): 1e-5.
      out.forEach((o, n) =>
        o.dataSync().forEach((v, i) => expect(Math.abs(v - x0[n][i]), `level ${n} i ${i}`).toBeLessThanOrEqual(1e-5)),
      );
      tf.dispose([...out, ...clean, ...noise]);
    });
  }
});

describe('the grid', () => {
  it(
    'step i goes from grid[i] to grid[i + 1], calling the denoiser at each grid t in order, ' +
      'every level with its own γ',
    () => {
      const grid = [900, 700, 650, 300, 0]; // irregular: no stride could produce it
      const { x0, init } = problem(21);
      const [clean, noise] = [tensors(x0), tensors(init)];
      const calls: number[] = [];
      const progress: Array<[number, number, number]> = [];
      const states: Float32Array[][] = [];
      const out = sample(perfect(clean, 'x0', calls), noise, grid, {
        schedules,
        sampler: 'ddim',
        threshold: 'none',
        predictionType: 'x0',
        clampOutput: false,
        onStep: (i, total, t, x) => {
          progress.push([i, total, t]);
          states.push(x.map((l) => Float32Array.from(l.dataSync())));
        },
      });
      expect(calls).toEqual([900, 700, 650, 300]);
      expect(progress).toEqual([
        [0, 4, 900],
        [1, 4, 700],
        [2, 4, 650],
        [3, 4, 300],
      ]);
      // With x̂0 = x0 at every step, DDIM(0) keeps ε̂ = (x_900 − √γ_900·x0)/√(1−γ_900) and the state
      // after step i is √γ_s·x0 + √(1−γ_s)·ε̂ with s = grid[i + 1] (float64 reference).
      states.forEach((state, i) =>
        state.forEach((level, n) => {
          const g = schedules[n].gammasF32;
          const [gT, gS] = [g[grid[0]], g[grid[i + 1]]];
          level.forEach((v, k) => {
            const epsHat = (init[n][k] - Math.sqrt(gT) * x0[n][k]) / Math.sqrt(1 - gT);
            // float32 roundings compound over ≤ 4 steps of O(1) values.
            expect(
              Math.abs(v - (Math.sqrt(gS) * x0[n][k] + Math.sqrt(1 - gS) * epsHat)),
              `step ${i} level ${n}`,
            ).toBeLessThanOrEqual(5e-6);
          });
        }),
      );
      tf.dispose([...out, ...clean, ...noise]);
    },
  );

  it('rejects grids that do not decrease, times outside a table, and missing schedules or noise sources', () => {
    const noise = shapes.map((s) => tf.zeros(s) as tf.Tensor4D);
    const denoiser: Denoiser = (x) => x.map((l) => tf.clone(l));
    const ddim: SampleOptions = { schedules, sampler: 'ddim' };
    expect(() => sample(denoiser, noise, [500], ddim)).toThrow(/at least two/);
    expect(() => sample(denoiser, noise, [500, 600, 0], ddim)).toThrow(/decrease/);
    expect(() => sample(denoiser, noise, [1200, 0], ddim)).toThrow(/table/);
    expect(() => sample(denoiser, noise, [500, 0], { schedules: [base] })).toThrow(/schedules/);
    expect(() => sample(denoiser, noise, [500, 0], { schedules })).toThrow(/rng/);
    expect(() => sample(denoiser, noise, [500, 0], { schedules, sampler: 'ddim', eta: 1 })).toThrow(/rng/);
    tf.dispose(noise);
  });
});

describe('stepFromPrediction', () => {
  it('thresholds x̂0 before the update and takes DDIM’s ε̂ from the thresholded x̂0, each level with its own γ', () => {
    const { init } = problem(31);
    const rng = new Rng(32);
    const wide = init.map((l) => Float32Array.from(l, () => 3 * rng.normal())); // x̂0 far outside [−1, 1]
    const [xT, pred] = [tensors(init), tensors(wide)];
    const out = stepFromPrediction(pred, xT, 600, 400, {
      schedules,
      sampler: 'ddim',
      threshold: 'clip',
      predictionType: 'x0',
    });
    out.forEach((o, n) => {
      const [gT, gS] = [schedules[n].gammasF32[600], schedules[n].gammasF32[400]];
      o.dataSync().forEach((v, k) => {
        const x0 = Math.min(Math.max(wide[n][k], -1), 1);
        const epsHat = (init[n][k] - Math.sqrt(gT) * x0) / Math.sqrt(1 - gT);
        // A few float32 roundings of O(1) terms.
        expect(
          Math.abs(v - (Math.sqrt(gS) * x0 + Math.sqrt(1 - gS) * epsHat)),
          `level ${n} i ${k}`,
        ).toBeLessThanOrEqual(2e-6);
      });
    });
    // Landing on s = 0 returns the thresholded x̂0 itself: dynamic DeepFloyd maps it into [−1, 1].
    const last = stepFromPrediction(pred, xT, 167, 0, {
      schedules,
      sampler: 'ddim',
      threshold: DYNAMIC_DEEPFLOYD,
      predictionType: 'x0',
    });
    last.forEach((o) => expect(Math.max(...Array.from(o.dataSync(), Math.abs))).toBeCloseTo(1, 6));
    tf.dispose([...out, ...last, ...xT, ...pred]);
  });
});

describe('DDPM sampling', () => {
  const toy: Denoiser = (x) => tf.tidy(() => x.map((l) => tf.mul(tf.tanh(l), 0.5) as tf.Tensor4D));
  const run = (seed: number) => {
    const noise = tensors(problem(1).init);
    const out = sample(toy, noise, samplingGrid(8), { schedules, rng: new Rng(seed), threshold: DYNAMIC_DEEPFLOYD });
    const data = out.map((o) => Array.from(o.dataSync()));
    tf.dispose([...out, ...noise]);
    return data;
  };

  it('is deterministic for a seed and differs between seeds', () => {
    const [a, b, c] = [run(7), run(7), run(8)];
    expect(a).toEqual(b);
    expect(a[0]).not.toEqual(c[0]);
  });

  it('draws z from the rng per step, one N(0,1) tensor per level in level order', () => {
    const noise = tensors(problem(2).init);
    const viaStep = sampleStep(toy, noise, 600, 400, { schedules, rng: new Rng(4), threshold: 'clip' });
    const rng = new Rng(4);
    const z = shapes.map((s) => rng.normalTensor(s) as tf.Tensor4D);
    const prediction = toy(noise, 600);
    const manual = stepFromPrediction(prediction, noise, 600, 400, { schedules, threshold: 'clip' }, z);
    viaStep.forEach((v, n) => expect(Array.from(v.dataSync())).toEqual(Array.from(manual[n].dataSync())));
    tf.dispose([...viaStep, ...manual, ...z, ...prediction, ...noise]);
  });

  it('clamps the returned images to [−1, 1] unless clampOutput is false', () => {
    // An x0-predictor answering 3 everywhere, no thresholding: the last step lands on x̂0 = 3.
    const three: Denoiser = (x) => x.map((l) => tf.fill(l.shape, 3) as tf.Tensor4D);
    const noise = tensors(problem(3).init);
    const options: SampleOptions = { schedules, sampler: 'ddim', threshold: 'none', predictionType: 'x0' };
    const clamped = sample(three, noise, [500, 0], options);
    const raw = sample(three, noise, [500, 0], { ...options, clampOutput: false });
    clamped.forEach((o) => expect(new Set(o.dataSync())).toEqual(new Set([1])));
    raw.forEach((o) => expect(new Set(o.dataSync())).toEqual(new Set([3])));
    tf.dispose([...clamped, ...raw, ...noise]);
  });
});

describe('tensor hygiene', () => {
  it(
    'sampling (DDPM, dynamic thresholding, guidance, two levels) ' +
      'keeps the tensor count flat across steps and leaks nothing',
    () => {
      const noise = tensors(problem(4).init);
      const doubled: Denoiser = (x) =>
        tf.tidy(() =>
          x.map((l) => tf.mul(tf.sin(l), tf.reshape(tf.linspace(0.5, 1, l.shape[0]), [-1, 1, 1, 1])) as tf.Tensor4D),
        );
      const start = tf.memory().numTensors;
      const counts: number[] = [];
      const out = sample(classifierFreeGuidance(doubled, 3), noise, samplingGrid(6), {
        schedules,
        rng: new Rng(1),
        onStep: () => counts.push(tf.memory().numTensors),
      });
      expect(counts).toHaveLength(6);
      // During each callback only the current state (one tensor per level) exists besides the inputs.
      expect(new Set(counts)).toEqual(new Set([start + shapes.length]));
      expect(tf.memory().numTensors).toBe(start + out.length);
      tf.dispose(out);
      expect(tf.memory().numTensors).toBe(start);
      // The caller's noise is untouched.
      noise.forEach((l) => expect(l.isDisposed).toBe(false));
      tf.dispose(noise);
    },
  );

  it('a throwing denoiser leaves no tensors behind', () => {
    const noise = tensors(problem(5).init);
    const start = tf.memory().numTensors;
    let calls = 0;
    const failing: Denoiser = (x) => {
      if (++calls === 3) throw new Error('network failed');
      return x.map((l) => tf.mul(l, 0.1) as tf.Tensor4D);
    };
    expect(() => sample(failing, noise, samplingGrid(5), { schedules, sampler: 'ddim' })).toThrow(/network failed/);
    expect(tf.memory().numTensors).toBe(start);
    tf.dispose(noise);
  });

  it('a callback that throws frees the state it was shown', () => {
    const noise = tensors(problem(5).init);
    const start = tf.memory().numTensors;
    const quiet: Denoiser = (x) => x.map((l) => tf.mul(l, 0.1) as tf.Tensor4D);
    const onStep = (i: number) => {
      if (i === 1) throw new Error('stop');
    };
    expect(() => sample(quiet, noise, samplingGrid(5), { schedules, sampler: 'ddim', onStep })).toThrow(/stop/);
    expect(tf.memory().numTensors).toBe(start);
    tf.dispose(noise);
  });
});

describe('sampleAsync', () => {
  it('gives sample’s values, awaiting each step’s callback before the next step', async () => {
    const { x0, init } = problem(31);
    const [clean, noise] = [tensors(x0), tensors(init)];
    const options = { schedules, sampler: 'ddpm' as const, threshold: DYNAMIC_DEEPFLOYD };
    const expected = sample(perfect(clean, 'v'), noise, samplingGrid(6), { ...options, rng: new Rng(3) });
    const events: string[] = [];
    const denoiser = perfect(clean, 'v');
    const counting: Denoiser = (x, t) => {
      events.push(`step ${t}`);
      return denoiser(x, t);
    };
    const means: number[] = [];
    const out = await sampleAsync(counting, noise, samplingGrid(6), {
      ...options,
      rng: new Rng(3),
      onStep: async (i, total, _t, x) => {
        // An asynchronous read of the state, as WebGPU in Node needs; the sampler waits for it.
        const level0 = (await x[0].data()) as Float32Array;
        means.push(level0.reduce((a, b) => a + b, 0) / level0.length);
        events.push(`read ${i}/${total}`);
      },
    });
    expect(events.filter((e) => e.startsWith('read'))).toEqual([0, 1, 2, 3, 4, 5].map((i) => `read ${i}/6`));
    // Each read finishes before the next network call.
    events.forEach((e, k) => expect(e.startsWith('step') === (k % 2 === 0)).toBe(true));
    expect(means.every(Number.isFinite)).toBe(true);
    // The same kernels on the same backend in the same order: identical values.
    out.forEach((level, n) => expect(level.dataSync()).toEqual(expected[n].dataSync()));
    tf.dispose([...out, ...expected, ...clean, ...noise]);
  });

  it('a callback that rejects leaves no tensors behind', async () => {
    const noise = tensors(problem(6).init);
    const start = tf.memory().numTensors;
    const quiet: Denoiser = (x) => x.map((l) => tf.mul(l, 0.1) as tf.Tensor4D);
    const onStep = async (i: number) => {
      if (i === 2) throw new Error('page closed');
    };
    await expect(sampleAsync(quiet, noise, samplingGrid(5), { schedules, sampler: 'ddim', onStep })).rejects.toThrow(
      /page closed/,
    );
    expect(tf.memory().numTensors).toBe(start);
    tf.dispose(noise);
  });
});
