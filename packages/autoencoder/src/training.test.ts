import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import type { Params } from '@matryoshka-ts/layers';
import { LAST_LAYER, adaptiveWeight, generatorLoss } from './adversarial.js';
import { AutoencoderKL, decodeLatent, encodeMoments } from './autoencoder-kl.js';
import type { AutoencoderKLConfig } from './config.js';
import { type DiscriminatorConfig, PatchDiscriminator, discriminatorForward } from './discriminator.js';
import { klLoss, nllLoss, reconstructionLoss } from './loss.js';
import { Lpips, lpipsParameterShapes } from './perceptual/lpips.js';
import { LOGVAR_MAX, LOGVAR_MIN, diagonalGaussian, samplePosterior } from './posterior.js';
import {
  type AutoencoderTrainOptions,
  type AutoencoderTrainState,
  AutoencoderTrainStep,
  LOGVAR_NAME,
} from './training.js';

/** The smallest valid autoencoder: 2 levels (f = 2), 32 channels (one per GroupNorm group), no attention. */
const tiny: AutoencoderKLConfig = {
  inChannels: 3,
  outChannels: 3,
  ch: 32,
  chMult: [1, 2],
  numResBlocks: 1,
  attnResolutions: [],
  resolution: 16,
  zChannels: 4,
  embedDim: 4,
  dropout: 0,
};
/** Two stride-2 layers: 16 px → 2×2 logits (three would leave none). */
const tinyDisc: DiscriminatorConfig = { inChannels: 3, ndf: 8, layers: 2 };
const B = 2;
const SIZE = 16;
const LATENT = [B, SIZE / 2, SIZE / 2, tiny.embedDim];
const NUMEL = B * SIZE * SIZE * 3;

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

/** A smooth, deterministic batch in [−0.8, 0.8]. */
function images(): tf.Tensor4D {
  const data = new Float32Array(NUMEL);
  let k = 0;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < SIZE; i++)
      for (let j = 0; j < SIZE; j++)
        for (let c = 0; c < 3; c++) data[k++] = 0.8 * Math.sin(0.35 * i + 0.25 * (c + 1) * j + 1.3 * b + c);
  return tf.tensor4d(data, [B, SIZE, SIZE, 3]);
}

interface Setup {
  ae: AutoencoderKL;
  disc?: PatchDiscriminator;
  step: AutoencoderTrainStep;
  dispose(): void;
}

function setup(options: Partial<AutoencoderTrainOptions> = {}, disc?: { start: number }): Setup {
  const ae = new AutoencoderKL(tiny, { seed: 1 });
  const d = disc ? new PatchDiscriminator(tinyDisc, { seed: 2 }) : undefined;
  const step = new AutoencoderTrainStep(ae, {
    lr: 1e-3,
    ...options,
    ...(d && disc ? { discriminator: { model: d, start: disc.start } } : {}),
  });
  return {
    ae,
    disc: d,
    step,
    dispose: () => {
      step.dispose();
      ae.dispose();
      d?.dispose();
    },
  };
}

/** Every weight of the setup, with the discriminator's BatchNorm buffers and the log-variance. */
function snapshot(s: Setup): Map<string, Float32Array> {
  const out = new Map(s.ae.getWeights());
  for (const [name, v] of s.disc?.getWeights() ?? []) out.set(`disc.${name}`, v);
  out.set(LOGVAR_NAME, Float32Array.from(s.step.logvar.dataSync()));
  return out;
}

function expectSameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [name, v] of a) expect(Buffer.from(b.get(name)!.buffer).equals(Buffer.from(v.buffer)), name).toBe(true);
}

/** Bytewise (a deep toEqual over the ~10⁶ moment values takes seconds). */
function expectSameState(a: AutoencoderTrainState, b: AutoencoderTrainState): void {
  expect([b.globalStep, b.logvar, b.ae.step, b.disc?.step]).toEqual([a.globalStep, a.logvar, a.ae.step, a.disc?.step]);
  for (const key of ['ae', 'disc'] as const) {
    const [x, y] = [a[key], b[key]];
    expect(Boolean(y)).toBe(Boolean(x));
    if (!x || !y) continue;
    expectSameWeights(x.m, y.m);
    expectSameWeights(x.v, y.v);
  }
}

const sum = (v: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  return s;
};
const relErr = (got: number, want: number) => Math.abs(got - want) / Math.max(Math.abs(want), 1e-12);

/**
 * The posterior sample and reconstruction the step sees, recomputed from the public pieces with
 * z = mean + std·ε formed in float64 (the step forms it in float32).
 */
function reference(ae: AutoencoderKL, x: tf.Tensor4D, eps: Float32Array, P: Params = ae.P) {
  const moments = encodeMoments(P, ae.config, x);
  const data = moments.dataSync();
  const e = tiny.embedDim;
  const cells = data.length / (2 * e);
  const mean = new Float64Array(cells * e);
  const logvar = new Float64Array(cells * e);
  for (let i = 0; i < cells; i++)
    for (let c = 0; c < e; c++) {
      mean[i * e + c] = data[i * 2 * e + c];
      logvar[i * e + c] = Math.min(Math.max(data[i * 2 * e + e + c], LOGVAR_MIN), LOGVAR_MAX);
    }
  const z = Float32Array.from(mean, (m, i) => m + Math.exp(logvar[i] / 2) * eps[i]);
  const zt = tf.tensor4d(z, moments.shape.slice(0, 3).concat(e) as [number, number, number, number]);
  const xRec = decodeLatent(P, ae.config, zt);
  tf.dispose([moments, zt]);
  return { mean, logvar, xRec };
}

describe('AutoencoderTrainStep', () => {
  let x: tf.Tensor4D;
  beforeAll(() => {
    x = images();
  });
  afterAll(() => x.dispose());

  it('(a) its loss is CompVis’s, term by term, against a float64 recomputation (GAN on)', () => {
    const s = setup({ klWeight: 0.01, logvarInit: 0.3 }, { start: 0 });
    const seed = 5;
    const pass = s.step.generatorGradients(x, new Rng(seed));
    const eps = new Rng(seed).normals(LATENT.reduce((a, b) => a * b, 1));
    const { mean, logvar, xRec } = reference(s.ae, x, eps);

    const xs = x.dataSync();
    const xr = xRec.dataSync();
    let l1 = 0;
    for (let i = 0; i < NUMEL; i++) l1 += Math.abs(xs[i] - xr[i]);
    const lv = Math.fround(0.3);
    const nll = (l1 / Math.exp(lv) + NUMEL * lv) / B;
    let kl = 0;
    for (let i = 0; i < mean.length; i++) kl += 0.5 * (mean[i] ** 2 + Math.exp(logvar[i]) - 1 - logvar[i]);
    kl /= B;
    const logits = discriminatorForward(s.disc!.P, tinyDisc, xRec, { training: true });
    const gLoss = -sum(logits.dataSync()) / logits.size;

    // d_weight from two separate autodiff passes w.r.t. the last layer (CompVis's autograd.grad calls).
    const last = s.ae.params.get(LAST_LAYER)!;
    const withLast =
      (w: tf.Tensor): Params =>
      (name) =>
        name === LAST_LAYER ? w : s.ae.P(name);
    const recAt = (w: tf.Tensor) => reference(s.ae, x, eps, withLast(w)).xRec;
    const nllGrad = tf.grad((w) => nllLoss(reconstructionLoss(x, recAt(w)), s.step.logvar))(last);
    const gGrad = tf.grad((w) => generatorLoss(discriminatorForward(s.disc!.P, tinyDisc, recAt(w))))(last);
    const dWeight = adaptiveWeight(nllGrad, gGrad, 0.5);

    // float32 sums of 1,536 O(1) terms (and the float32 vs float64 z): relative error ≲ 1e-6; 2e-5 leaves room.
    expect(relErr(pass.rec, l1 / NUMEL)).toBeLessThan(2e-5);
    expect(relErr(pass.nll, nll)).toBeLessThan(2e-5);
    expect(relErr(pass.kl, kl)).toBeLessThan(2e-5);
    // Logits come out of three float32 convolutions and two BatchNorms, whose means of O(1) values
    // cancel to O(0.1): 1e-4 relative.
    expect(relErr(pass.gLoss!, gLoss)).toBeLessThan(1e-4);
    // Ratio of two gradient norms, each accumulated in float32 over 8·16·16·2 products per entry.
    expect(relErr(pass.dWeight!, dWeight)).toBeLessThan(1e-4);
    expect(pass.discFactor).toBe(1);
    expect(relErr(pass.loss, nll + 0.01 * kl + dWeight * 1 * gLoss)).toBeLessThan(2e-5);
    tf.dispose([xRec, logits, nllGrad, gGrad]);
    pass.dispose();
    s.dispose();
  });

  it('(a) its one-pass gradient equals ∇(nll + kl_weight·kl) + d_weight·disc_factor·∇g_loss taken apart', () => {
    const s = setup({ klWeight: 0.01 }, { start: 0 });
    const seed = 6;
    const pass = s.step.generatorGradients(x, new Rng(seed));
    const eps = new Rng(seed).normalTensor(LATENT) as tf.Tensor4D;
    const vars = [...s.ae.params.values()];
    const forward = () => {
      const posterior = diagonalGaussian(encodeMoments(s.ae.P, tiny, x));
      return { posterior, xRec: decodeLatent(s.ae.P, tiny, samplePosterior(posterior, eps)) };
    };
    const a = tf.variableGrads(() => {
      const { posterior, xRec } = forward();
      return tf.add(nllLoss(reconstructionLoss(x, xRec), s.step.logvar), tf.mul(klLoss(posterior), 0.01)) as tf.Scalar;
    }, [...vars, s.step.logvar]);
    const g = tf.variableGrads(() => generatorLoss(discriminatorForward(s.disc!.P, tinyDisc, forward().xRec)), vars);
    const scale = pass.dWeight! * pass.discFactor;
    const maxAbs = (t: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]);
    const wants = new Map(
      [...s.ae.params].map(([name, v]) => [
        name,
        tf.tidy(() => tf.add(a.grads[v.name], tf.mul(g.grads[v.name] ?? tf.zerosLike(v), scale))),
      ]),
    );
    const largest = Math.max(...[...wants.values()].map(maxAbs));
    let worst = 0;
    for (const [name, want] of wants) {
      const diff = tf.tidy(() => tf.sub(pass.grads.get(name)!, want));
      // Relative to the tensor's largest entry: float32 backprop through ~20 layers, measured ≲ 3e-6.
      // The floor (1% of the largest entry of all, ≈ 70) is for gradients that are 0 in exact
      // arithmetic and float32 noise here (≈ 1e-5 absolute, 2e-7 of the largest): biases whose
      // per-channel shift a GroupNorm of one channel per group removes, and the attention's key
      // bias (softmax ignores a shift shared by one query's logits).
      worst = Math.max(worst, maxAbs(diff) / Math.max(maxAbs(want), 1e-2 * largest));
      tf.dispose([diff, want]);
    }
    expect(worst).toBeLessThan(1e-4);
    // logvar's gradient has no GAN part.
    expect(relErr(pass.grads.get(LOGVAR_NAME)!.dataSync()[0], a.grads[s.step.logvar.name].dataSync()[0])).toBeLessThan(
      1e-5,
    );
    tf.dispose([eps, a.value, g.value, ...Object.values(a.grads), ...Object.values(g.grads)]);
    pass.dispose();
    s.dispose();
  });

  it('(a) adds perceptual_weight·LPIPS per sample to every element of rec_loss', () => {
    const lpips = randomLpips();
    const s = setup({ lpips, perceptualWeight: 0.7 });
    const seed = 7;
    const pass = s.step.generatorGradients(x, new Rng(seed));
    const { xRec } = reference(s.ae, x, new Rng(seed).normals(LATENT.reduce((a, b) => a * b, 1)));
    const d = lpips.distance(x, xRec).dataSync();
    const xs = x.dataSync();
    const xr = xRec.dataSync();
    let l1 = 0;
    for (let i = 0; i < NUMEL; i++) l1 += Math.abs(xs[i] - xr[i]);
    const rec = l1 + 0.7 * (NUMEL / B) * (d[0] + d[1]);
    expect(d[0]).toBeGreaterThan(0);
    // As above; LPIPS adds five float32 feature distances: 1e-4.
    expect(relErr(pass.rec, rec / NUMEL)).toBeLessThan(1e-4);
    expect(relErr(pass.nll, rec / B)).toBeLessThan(1e-4); // logvar 0: nll = Σ rec / B
    expect(pass.gLoss).toBeUndefined();
    xRec.dispose();
    pass.dispose();
    s.dispose();
    lpips.dispose();
  });

  it('(b) ∂loss/∂logvar: −Σ rec·e^(−logvar)/B + numel/B, and a central difference agrees', () => {
    // The loss function alone, on a fixed rec.
    const rng = new Rng(3);
    const rec = tf.tensor4d(Float32Array.from(rng.normals(NUMEL), Math.abs), [B, SIZE, SIZE, 3]);
    const recSum = sum(rec.dataSync());
    const lv0 = 0.4;
    const closed = (-recSum * Math.exp(-lv0)) / B + NUMEL / B;
    const at = (lv: number) => tf.tidy(() => nllLoss(rec, tf.scalar(lv)).dataSync()[0]);
    const grad = tf.grad((lv) => nllLoss(rec, lv))(tf.scalar(lv0));
    // Central difference of the float32 loss f ≈ 560 (gradient ≈ 360): truncation h²/6·|f'''| ≈ 7e-3
    // (f''' = −Σrec·e^(−lv)/B ≈ −410), i.e. 2e-5 relative; but each f carries its own float32
    // summation error, ≈ √1536·6e-8·560 ≈ 1.3e-3, which the difference divides by 2h: ≈ 0.07, i.e.
    // 2e-4 relative, up to a few times that. 1e-3 still tells a wrong formula (off by O(1)) apart.
    const h = 1e-2;
    const fd = (at(lv0 + h) - at(lv0 - h)) / (2 * h);
    expect(relErr(grad.dataSync()[0], closed)).toBeLessThan(1e-5); // one float32 reduction
    expect(relErr(fd, closed)).toBeLessThan(1e-3);
    tf.dispose([rec, grad]);

    // Through the whole step: the gradient of loss.logvar the optimizer receives.
    const s = setup({ logvarInit: -0.2 }, { start: 0 });
    const pass = s.step.generatorGradients(x, new Rng(4));
    const lv = Math.fround(-0.2);
    const want = (-pass.rec * NUMEL * Math.exp(-lv)) / B + NUMEL / B;
    // pass.rec is a float32 mean of 1,536 terms: 1e-5 relative, amplified by the cancellation of the
    // two terms (|want| ≈ 0.3 of each): 1e-4.
    expect(relErr(pass.grads.get(LOGVAR_NAME)!.dataSync()[0], want)).toBeLessThan(1e-4);
    pass.dispose();
    s.dispose();
  });

  it('(c) a few steps on a fixed batch reduce the reconstruction loss', () => {
    const s = setup();
    /** L1 of the deterministic reconstruction (the posterior mean), free of the sampling noise of `rec`. */
    const l1 = () =>
      tf.tidy(() => {
        const posterior = s.ae.encode(x);
        return tf.mean(tf.abs(tf.sub(x, s.ae.decode(posterior.mean)))).dataSync()[0];
      });
    const before = l1();
    const rng = new Rng(8);
    const recs: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = s.step.run(x, rng);
      expect(r.skipped).toBeUndefined();
      recs.push(r.rec);
    }
    const after = l1();
    expect(s.step.globalStep).toBe(8);
    // Measured 0.58 → 0.24 on wasm; the sampled `rec` falls too, through the noise (0.57 → 0.28).
    expect(after).toBeLessThan(0.7 * before);
    expect(recs.at(-1)!).toBeLessThan(recs[0]);
    // The log-variance is learned: rec < 1 pulls it below 0 (its optimum is log(mean rec)).
    expect(s.step.logvar.dataSync()[0]).toBeLessThan(0);
    s.dispose();
  });

  it('learnLogvar: false keeps logvar fixed, as CompVis’s opt_ae (which lacks loss.logvar) does', () => {
    const s = setup({ learnLogvar: false, logvarInit: 0.25 });
    const rng = new Rng(12);
    const pass = s.step.generatorGradients(x, rng);
    expect(pass.grads.has(LOGVAR_NAME)).toBe(false);
    expect(pass.grads.size).toBe(s.ae.params.size);
    pass.dispose();
    const r = s.step.run(x, rng);
    expect(r.logvar).toBe(Math.fround(0.25));
    expect(s.step.logvar.dataSync()[0]).toBe(Math.fround(0.25));
    expect(s.step.state().ae.m.has(LOGVAR_NAME)).toBe(false);
    s.dispose();
  });

  it('(d) leaks no tensors across steps, without a discriminator and with one from its start', () => {
    for (const disc of [undefined, { start: 1 }]) {
      const s = setup({}, disc);
      const rng = new Rng(9);
      const start = tf.memory().numTensors;
      // Warm-up: Adam creates its moments on the first update (the discriminator's at step 1).
      s.step.run(x, rng);
      s.step.run(x, rng);
      const warm = tf.memory().numTensors;
      const slots = 2 * (s.ae.params.size + 1 + (s.disc?.params.size ?? 0));
      expect(warm - start).toBe(slots);
      for (let i = 0; i < 2; i++) {
        const r = s.step.run(x, rng);
        expect(r.discLoss === undefined).toBe(!disc);
        expect(tf.memory().numTensors).toBe(warm);
      }
      s.dispose();
    }
  });

  it('(e) state() and load() give the identical next step', () => {
    const a = setup({}, { start: 1 });
    const rng = new Rng(10);
    for (let i = 0; i < 2; i++) a.step.run(x, rng);
    const state = a.step.state();
    expect(state.globalStep).toBe(2);
    expect(state.ae.step).toBe(2);
    expect(state.disc!.step).toBe(2); // one zero-gradient step before disc_start, one real one
    expect(state.ae.m.has(LOGVAR_NAME)).toBe(true);

    // A fresh process: other initial weights, restored from the weights and the state.
    const b = setup({}, { start: 1 });
    b.ae.setWeights(a.ae.getWeights());
    b.disc!.setWeights(a.disc!.getWeights());
    b.disc!.numBatchesTracked = a.disc!.numBatchesTracked;
    b.step.load(state);
    expectSameWeights(snapshot(a), snapshot(b));

    const rngB = new Rng(rng.getState());
    const ra = a.step.run(x, rng);
    const rb = b.step.run(x, rngB);
    expect(rb).toEqual(ra);
    expectSameWeights(snapshot(a), snapshot(b));
    expectSameState(a.step.state(), b.step.state());
    expect(() => b.step.load({ ...state, disc: undefined })).toThrow(/discriminator/);
    a.dispose();
    b.dispose();
  });

  it('(f) a NaN batch skips the update and leaves every weight and the state unchanged', () => {
    const s = setup({}, { start: 0 });
    const rng = new Rng(11);
    s.step.run(x, rng);
    const before = snapshot(s);
    const state = s.step.state();
    const tracked = s.disc!.numBatchesTracked;
    const bad = tf.tidy(() => tf.where(tf.equal(tf.reshape(tf.range(0, NUMEL), x.shape), 5), NaN, x)) as tf.Tensor4D;
    const tensors = tf.memory().numTensors;
    const r = s.step.run(bad, rng);
    expect(r.skipped).toBe('non-finite loss');
    expect(r.discLoss).toBeUndefined();
    expect(tf.memory().numTensors).toBe(tensors);
    expectSameWeights(before, snapshot(s));
    expectSameState(state, s.step.state());
    expect(s.disc!.numBatchesTracked).toBe(tracked);
    // And the next good batch trains as usual.
    expect(s.step.run(x, rng).skipped).toBeUndefined();
    expect(s.step.globalStep).toBe(2);
    bad.dispose();
    s.dispose();
  });
});

/** LPIPS with random (He-scaled) VGG weights and non-negative lin weights, from a fast LCG. */
function randomLpips(): Lpips {
  let state = 12345;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const dict = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of lpipsParameterShapes()) {
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.length === 4 ? shape[1] * shape[2] * shape[3] : 1;
    const data = new Float32Array(n);
    if (name.startsWith('lin')) for (let i = 0; i < n; i++) data[i] = 0.1 * uniform();
    else if (name.endsWith('.weight')) {
      // Uniform with the variance of He's init: (2u − 1)·√(6/fanIn).
      const a = Math.sqrt(6 / fanIn);
      for (let i = 0; i < n; i++) data[i] = (2 * uniform() - 1) * a;
    }
    dict.set(name, { shape, data });
  }
  return Lpips.fromStateDict(dict);
}
