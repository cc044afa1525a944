import * as tf from '@tensorflow/tfjs-core';
import {
  type Conditioning,
  type DiffusionModel,
  type PredictionType,
  type Rng,
  clipRowsToFrames,
  framesToClipRows,
} from '@matryoshka-ts/core';
import {
  type DownsampleMethod,
  type LossTarget,
  downsample,
  drawTrainingExample,
  drawTrainingExampleInParts,
  firstSamples,
  multiResolutionLoss,
  samplesPerLevel,
  minSnrWeights,
  vdmLossWeights,
} from '@matryoshka-ts/losses';
import type { LevelSchedules } from '@matryoshka-ts/schedules';
import {
  Adam,
  type AdamOptions,
  type LrDecay,
  clipByGlobalNorm,
  emaDecay,
  globalNorm,
  learningRate,
  updateEma,
} from './optim.js';

/** How one training step computes its loss and updates the weights (a run config's loss, optimizer and EMA). */
export interface TrainStepOptions {
  loss: {
    /** What the network predicts, and what the loss compares against. */
    prediction: PredictionType;
    target: LossTarget;
    /** Per-level weights, level 0 first (default all 1). */
    weights?: readonly number[];
    /** Mixed-resolution ratio per level (default: every level sees every sample). */
    mixedRatio?: readonly number[];
    /** How lower levels' clean images are made (default `avgpool`, as the official code). */
    lowRes?: DownsampleMethod;
    /** VDM per-sample weights (the official `use_vdm_loss_weights`). */
    vdmWeights?: boolean;
    /** Min-SNR-γ weighting of each level's error, from its own schedule (omit for none). */
    minSnrGamma?: number;
  };
  optimizer: AdamOptions & {
    lr: number;
    /** Linear warm-up of the learning rate from 0 over this many updates (0: none). */
    warmupSteps: number;
    /** Gradient clipping by global norm (0: off). */
    clipNorm: number;
    /** A cosine fall of the learning rate after warm-up (omit for a constant one). */
    lrDecay?: LrDecay;
  };
  /** An exponential moving average of the weights (omit for none). */
  ema?: { decay: number; warmup: boolean };
  /**
   * Measure the global gradient norm (default true): clipping, the non-finite-gradient guard and
   * the `gradNorm` metric need it. Off only where a reference does not pay for it (benchmarks).
   */
  gradNorm?: boolean;
}

/** One batch's loss and gradients, before the update. */
export interface StepGradients {
  loss: number;
  /** Mean squared error per level (NaN for a level that saw no sample). */
  mse: number[];
  /** Gradients by parameter name; `update` frees them. */
  grads: Map<string, tf.Tensor>;
}

/** What a step did. */
export interface StepResult {
  loss: number;
  mse: number[];
  /** The global gradient norm before clipping (NaN when not measured or the loss was not finite). */
  gradNorm: number;
  /** The learning rate of this update. */
  lr: number;
  /** Why the update was skipped (a non-finite loss or gradient); the weights are then unchanged. */
  skipped?: string;
}

/**
 * The training step of every pipeline: draw a noisy example of every level → forward → the
 * multi-resolution loss → gradients → the non-finite guard → clipping → Adam → EMA. The trainer,
 * the benchmarks and the profiler all run this one implementation.
 */
export class TrainStep {
  readonly adam: Adam;
  /** The EMA weights (when `options.ema` is set), and how many updates they have seen. */
  readonly ema: Map<string, tf.Variable> | undefined;
  emaUpdates = 0;
  private readonly names: string[];
  private readonly vars: tf.Variable[];

  constructor(
    readonly model: DiffusionModel,
    readonly schedules: LevelSchedules,
    readonly options: TrainStepOptions,
    /** Initial EMA weights (progressive training carries them over); default: a copy of the model's. */
    ema?: Map<string, tf.Variable>,
  ) {
    if (schedules.length !== model.levels.length) {
      throw new Error(`TrainStep: ${schedules.length} schedules for a model of ${model.levels.length} levels`);
    }
    this.adam = new Adam(options.optimizer);
    // Fixed buffers stored with the weights (rotary frequencies) get no gradient, Adam state or update.
    this.names = [...model.params.keys()].filter((n) => model.params.get(n)!.trainable);
    this.vars = this.names.map((n) => model.params.get(n)!);
    this.ema = options.ema ? (ema ?? copyVariables(model.params)) : undefined;
  }

  /**
   * Forward, loss and backward on one batch of clean images at level 0's resolution or larger
   * (downsampled with `loss.lowRes`), NHWC; for a video model, clips of level 0's frames as
   * adjacent rows ([B·F, r, r, C]). Draws the example's times and noise from `rng`; given several
   * generators, the batch is that many equal parts each drawn from its own (what data-parallel
   * ranks draw: `drawTrainingExampleInParts`). The inputs stay the caller's. The loss and the
   * per-level errors come back in one asynchronous read (WebGPU in Node has no synchronous one).
   */
  async computeGradients(
    images: tf.Tensor4D,
    conditioning: Conditioning,
    rng: Rng | readonly Rng[],
  ): Promise<StepGradients> {
    const { loss: lossOptions } = this.options;
    const levels = this.model.levels;
    const resolutions = levels.map((l) => l.resolution);
    const frames = levels.map((l) => l.frames);
    const top = images.shape[1] === resolutions[0] ? images : downsample(images, resolutions[0], lossOptions.lowRes);
    // The example holds each clip as one sample ([B, F·r, r, C]): γ, noise and loss are per clip.
    const drawOptions = { schedules: this.schedules, resolutions, downsample: lossOptions.lowRes, frames };
    const example = Array.isArray(rng)
      ? drawTrainingExampleInParts(top, drawOptions, rng)
      : drawTrainingExample(top, drawOptions, rng as Rng);
    const ratio = lossOptions.mixedRatio;
    const sampleWeights = lossOptions.vdmWeights
      ? vdmLossWeights(this.schedules[0].gammasF32, example.times)
      : undefined;
    const batch = example.times.length;
    // Mixed-resolution batches: level n sees the first seen[n] samples.
    const seen = ratio ? samplesPerLevel(ratio, batch) : levels.map(() => batch);
    const gammaMax = lossOptions.minSnrGamma;
    const levelSampleWeights =
      gammaMax === undefined
        ? undefined
        : this.schedules.map((schedule, n) =>
            minSnrWeights(schedule.gammasF32, example.times.slice(0, seen[n]), gammaMax, lossOptions.target),
          );
    let mse: tf.Tensor1D[] = [];
    const { value, grads } = tf.variableGrads(() => {
      const xt = ratio ? firstSamples(example.xt, seen) : example.xt;
      const x = xt.map((t, n) => clipRowsToFrames(t, frames[n]));
      const outputs = this.model
        .forward({ x, times: example.times, ...conditioning }, { training: true })
        .map((o, n) => framesToClipRows(o, frames[n]));
      const result = multiResolutionLoss(outputs, example, {
        prediction: lossOptions.prediction,
        target: lossOptions.target,
        weights: lossOptions.weights as number[] | undefined,
        mixedRatio: ratio as number[] | undefined,
        sampleWeights,
        levelSampleWeights,
      });
      mse = result.mse.map((m) => tf.keep(m));
      return result.loss;
    }, this.vars);
    // [loss, mean error of each level that saw samples], read at once.
    const summary = tf.tidy(() => tf.stack([value, ...mse.filter((m) => m.size).map((m) => tf.mean(m))]));
    tf.dispose([value, ...mse, example]);
    if (top !== images) top.dispose();
    const read = await summary.data();
    summary.dispose();
    let k = 1;
    const mseMeans = mse.map((m) => (m.size ? read[k++] : Number.NaN));
    return {
      loss: read[0],
      mse: mseMeans,
      grads: new Map(this.names.map((name, i) => [name, grads[this.vars[i].name]])),
    };
  }

  /**
   * Applies one batch's gradients, and frees them: skipped when the loss or the gradient norm is
   * not finite (the weights, Adam and the EMA stay as they were); else clipping, Adam at the
   * warmed-up learning rate, then the EMA.
   */
  async update(step: StepGradients): Promise<StepResult> {
    const { optimizer, ema } = this.options;
    const { loss, mse, grads } = step;
    let gradNorm = Number.NaN;
    let skipped: string | undefined;
    if (!Number.isFinite(loss)) skipped = 'non-finite loss';
    else if (this.options.gradNorm ?? true) {
      gradNorm = await globalNorm(grads.values());
      if (!Number.isFinite(gradNorm)) skipped = 'non-finite gradient';
    }
    const lr = learningRate(this.adam.step + 1, optimizer.lr, optimizer.warmupSteps, optimizer.lrDecay);
    if (!skipped) {
      if (Number.isFinite(gradNorm)) clipByGlobalNorm(grads, gradNorm, optimizer.clipNorm);
      this.adam.update(this.model.params, grads, lr);
      if (this.ema && ema) {
        this.emaUpdates += 1;
        updateEma(this.ema, this.model.params, emaDecay(this.emaUpdates, ema.decay, ema.warmup));
      }
    }
    tf.dispose([...grads.values()]);
    return { loss, mse, gradNorm, lr, ...(skipped ? { skipped } : {}) };
  }

  /** One whole step: `computeGradients`, then `update`. */
  async run(images: tf.Tensor4D, conditioning: Conditioning, rng: Rng | readonly Rng[]): Promise<StepResult> {
    return this.update(await this.computeGradients(images, conditioning, rng));
  }

  /** Frees Adam's state and the EMA weights (the model stays the caller's). */
  dispose(): void {
    this.adam.dispose();
    for (const v of this.ema?.values() ?? []) v.dispose();
    this.ema?.clear();
  }
}

/** Non-trainable copies of variables (the EMA's starting point). */
function copyVariables(from: Map<string, tf.Variable>): Map<string, tf.Variable> {
  return new Map(
    [...from].map(([name, v]) => {
      const initial = v.clone();
      const copy = tf.variable(initial, false);
      initial.dispose();
      return [name, copy];
    }),
  );
}
