import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '@matryoshka-ts/core';
import { conv2dFilterGradient } from '@matryoshka-ts/kernels';
import { conv1x1, conv2d } from '@matryoshka-ts/layers';
import { Adam, type AdamState } from './adam.js';
import {
  type DiscriminatorLossKind,
  LAST_LAYER,
  adaptiveWeight,
  adoptWeight,
  discriminatorLoss,
  generatorLoss,
} from './adversarial.js';
import { type AutoencoderKL, decodeLatent, encodeMoments } from './autoencoder-kl.js';
import { decoderFeatures } from './decoder.js';
import {
  BATCH_NORM_MOMENTUM,
  type PatchDiscriminator,
  discriminatorForward,
  discriminatorOutputSize,
} from './discriminator.js';
import {
  DISC_FACTOR,
  DISC_WEIGHT,
  KL_WEIGHT,
  LOGVAR_INIT,
  PERCEPTUAL_WEIGHT,
  klLoss,
  nllLoss,
  reconstructionLoss,
} from './loss.js';
import type { Lpips } from './perceptual/lpips.js';
import { diagonalGaussian, samplePosterior } from './posterior.js';

/**
 * The training step of CompVis's KL autoencoder: `AutoencoderKL.training_step` with
 * `configure_optimizers` (`ldm/models/autoencoder.py`) and its loss `LPIPSWithDiscriminator`
 * (`ldm/modules/losses/contperceptual.py`), as PyTorch Lightning 1.4 runs them with two
 * optimizers: per batch, an autoencoder update (optimizer 0), then a discriminator update
 * (optimizer 1) computed from a fresh forward of the updated autoencoder.
 */

/** The name of the loss's learned log-variance in `AutoencoderTrainStep`'s optimizer state (CompVis's). */
export const LOGVAR_NAME = 'loss.logvar';

export interface DiscriminatorTrainOptions {
  model: PatchDiscriminator;
  /** disc_start: the global step from which the GAN terms are on (CompVis's configs: 50001). */
  start: number;
  /** disc_weight: multiplies the adaptive weight (CompVis's configs: 0.5). */
  weight?: number;
  /** disc_factor: the GAN terms' weight from `start` on (1). */
  factor?: number;
  /** disc_loss (hinge). */
  loss?: DiscriminatorLossKind;
}

export interface AutoencoderTrainOptions {
  /**
   * Learning rate of both optimizers. Required: CompVis's is `base_learning_rate` 4.5e-6
   * (`BASE_LEARNING_RATE`) × batch size × GPUs × accumulated batches, so it depends on the run.
   */
  lr: number;
  /** Adam's β1, β2, ε (0.5, 0.9 as CompVis's `configure_optimizers`; PyTorch's ε 1e-8). */
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** kl_weight (1e-6, CompVis's configs). */
  klWeight?: number;
  /** perceptual_weight (1); the LPIPS term is there only when `lpips` is given. */
  perceptualWeight?: number;
  lpips?: Lpips;
  /** logvar_init (0). */
  logvarInit?: number;
  /**
   * Train `loss.logvar` with the autoencoder's optimizer (default true). CompVis's
   * `configure_optimizers` gives opt_ae only the encoder, decoder, quant_conv and
   * post_quant_conv parameters, so there it stays at `logvarInit`: set false to reproduce that.
   */
  learnLogvar?: boolean;
  /** The adversarial part; without it the loss is the NLL and KL terms alone. */
  discriminator?: DiscriminatorTrainOptions;
}

/** What one step computed (the values CompVis logs), all before this step's updates. */
export interface AutoencoderStepResult {
  /** The global step this batch was trained at (adopt_weight's `global_step`). */
  globalStep: number;
  /** The autoencoder's loss: nll + kl_weight·kl + d_weight·disc_factor·g_loss. */
  loss: number;
  /** The mean of rec_loss (L1 plus the weighted LPIPS distance), CompVis's `rec_loss`. */
  rec: number;
  nll: number;
  kl: number;
  /** The log-variance the loss used. */
  logvar: number;
  /** adopt_weight(disc_factor, global_step, disc_start); 0 without a discriminator. */
  discFactor: number;
  /** −mean(D(x̂)) and the adaptive weight: only where the GAN term is on (discFactor > 0). */
  gLoss?: number;
  dWeight?: number;
  /** disc_factor · L_D and the mean logits, where the discriminator was updated. */
  discLoss?: number;
  logitsReal?: number;
  logitsFake?: number;
  /**
   * Why the whole step was skipped (a non-finite loss or gradient): the weights, both optimizers,
   * the log-variance, the BatchNorm statistics and the global step are then unchanged.
   */
  skipped?: string;
  /** Why only the discriminator's update was skipped (its loss or gradient not finite). */
  discSkipped?: string;
}

/** The step's own state for checkpoints; the models' weights (and BatchNorm buffers) are saved by their owners. */
export interface AutoencoderTrainState {
  globalStep: number;
  logvar: number;
  /** The autoencoder's optimizer (including `loss.logvar` when it is learned). */
  ae: AdamState;
  /** The discriminator's optimizer, where there is a discriminator. */
  disc?: AdamState;
}

/** One BatchNorm layer's statistics of one discriminator forward (PyTorch updates the running ones with them). */
interface BatchStatistics {
  norm: string;
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  count: number;
}

/** One autoencoder pass: the loss terms and the gradients, before any update. `dispose()` frees the tensors. */
export interface GeneratorPass {
  loss: number;
  rec: number;
  nll: number;
  kl: number;
  discFactor: number;
  gLoss?: number;
  dWeight?: number;
  /** Gradients of the loss by parameter name (the autoencoder's, and `loss.logvar` when learned). */
  grads: Map<string, tf.Tensor>;
  dispose(): void;
}

interface InternalPass extends GeneratorPass {
  /** The discriminator forward of this pass, applied to the running statistics with the update. */
  batchStats: BatchStatistics[];
  discForwards: number;
}

type ResolvedDiscriminator = Required<DiscriminatorTrainOptions>;

/**
 * CompVis's KL-autoencoder training step. `run(images, rng)` trains on one batch: the autoencoder
 * (encoder, decoder, quant convs and, by default, `loss.logvar`) by Adam on
 *   nll + kl_weight·kl + d_weight·disc_factor·g_loss,
 * then, with a discriminator, the discriminator by Adam on disc_factor·L_D(D(x), D(x̂)).
 * disc_factor is 0 before `discriminator.start`; the discriminator's optimizer then still counts
 * its (zero-gradient) steps, as PyTorch's does, but the discriminator is not run: in CompVis its
 * output is multiplied by 0 there, and it only moves BatchNorm running statistics, which the
 * train-mode discriminator never reads. The adaptive weight is likewise computed only where it
 * counts (CompVis computes it from step 0 for its logs).
 */
export class AutoencoderTrainStep {
  readonly options: Readonly<
    Required<Omit<AutoencoderTrainOptions, 'lpips' | 'discriminator'>> & Pick<AutoencoderTrainOptions, 'lpips'>
  >;
  readonly discriminator: ResolvedDiscriminator | undefined;
  /** CompVis's `loss.logvar`: one scalar. */
  readonly logvar: tf.Variable;
  readonly aeOptimizer: Adam;
  readonly discOptimizer: Adam | undefined;
  /** Batches trained (skipped ones not counted): adopt_weight's `global_step`. */
  globalStep = 0;
  /** The parameters opt_ae updates, by name. */
  private readonly aeParams: Map<string, tf.Variable>;
  private readonly aeNames: string[];
  private readonly discNames: string[];

  constructor(
    readonly autoencoder: AutoencoderKL,
    options: AutoencoderTrainOptions,
  ) {
    const { lpips, discriminator, ...rest } = options;
    this.options = {
      beta1: 0.5,
      beta2: 0.9,
      eps: 1e-8,
      klWeight: KL_WEIGHT,
      perceptualWeight: PERCEPTUAL_WEIGHT,
      logvarInit: LOGVAR_INIT,
      learnLogvar: true,
      ...rest,
      lpips,
    };
    const o = this.options;
    if (!(o.lr > 0 && Number.isFinite(o.lr))) throw new Error(`AutoencoderTrainStep: lr must be positive, got ${o.lr}`);
    if (!Number.isFinite(o.logvarInit)) throw new Error(`AutoencoderTrainStep: logvarInit ${o.logvarInit}`);
    if (discriminator) {
      this.discriminator = {
        weight: DISC_WEIGHT,
        factor: DISC_FACTOR,
        loss: 'hinge',
        ...discriminator,
      };
      discriminatorLoss(this.discriminator.loss); // rejects unknown kinds
      if (this.discriminator.model.config.inChannels !== autoencoder.config.outChannels)
        throw new Error(
          `AutoencoderTrainStep: the discriminator takes ${this.discriminator.model.config.inChannels} channels, ` +
            `the decoder makes ${autoencoder.config.outChannels}`,
        );
    }
    const adam = { beta1: o.beta1, beta2: o.beta2, eps: o.eps };
    const initial = tf.scalar(o.logvarInit);
    this.logvar = tf.variable(initial, o.learnLogvar);
    initial.dispose();
    this.aeParams = new Map(autoencoder.params);
    if (o.learnLogvar) this.aeParams.set(LOGVAR_NAME, this.logvar);
    this.aeNames = [...this.aeParams.keys()];
    this.aeOptimizer = new Adam(adam);
    this.discOptimizer = this.discriminator ? new Adam(adam) : undefined;
    this.discNames = this.discriminator ? [...this.discriminator.model.params.keys()] : [];
  }

  /**
   * One batch: an autoencoder update, then (with a discriminator) a discriminator update. `images`
   * [B, H, W, C] in [−1, 1] stay the caller's; `rng` draws the posterior samples (one per pass).
   */
  run(images: tf.Tensor4D, rng: Rng): AutoencoderStepResult {
    const globalStep = this.globalStep;
    const logvar = this.logvar.dataSync()[0];
    const pass = this.computeGradients(images, rng);
    const { loss, rec, nll, kl, discFactor, gLoss, dWeight } = pass;
    const result: AutoencoderStepResult = { globalStep, loss, rec, nll, kl, logvar, discFactor };
    if (gLoss !== undefined) Object.assign(result, { gLoss, dWeight });
    try {
      const terms = [loss, rec, nll, kl, ...(gLoss === undefined ? [] : [gLoss])];
      if (!terms.every(Number.isFinite)) result.skipped = 'non-finite loss';
      else if (!allFinite(pass.grads.values())) result.skipped = 'non-finite gradient';
      if (result.skipped) return result;
      this.aeOptimizer.update(this.aeParams, pass.grads, this.options.lr);
      if (this.discriminator) applyBatchStatistics(this.discriminator.model, pass.batchStats, pass.discForwards);
    } finally {
      pass.dispose();
    }
    if (this.discriminator) Object.assign(result, this.discriminatorStep(images, rng, discFactor));
    this.globalStep += 1;
    return result;
  }

  /**
   * The autoencoder's loss terms and gradients at the current weights and global step, without
   * updating anything (draws one posterior sample from `rng`). The caller disposes the result.
   */
  generatorGradients(images: tf.Tensor4D, rng: Rng): GeneratorPass {
    return this.computeGradients(images, rng);
  }

  private computeGradients(images: tf.Tensor4D, rng: Rng): InternalPass {
    this.checkImages(images);
    const c = this.autoencoder.config;
    const { klWeight, lpips, perceptualWeight } = this.options;
    const disc = this.discriminator;
    const discFactor = disc ? adoptWeight(disc.factor, this.globalStep, disc.start) : 0;
    const adversarial = disc !== undefined && discFactor > 0;
    const [b, h, w] = images.shape;
    const f = this.autoencoder.factor;
    const eps = rng.normalTensor([b, h / f, w / f, c.embedDim]) as tf.Tensor4D;
    const batchStats: BatchStatistics[] = [];
    let terms: tf.Tensor[] = [];
    let dWeight = Number.NaN;
    const vars = this.aeNames.map((name) => this.aeParams.get(name)!);
    // The last layer's input, kept past the forward pass for `adaptiveSplit`'s backward.
    let kept: tf.Tensor | undefined;
    const taped = () => {
      const P = this.autoencoder.P;
      const options = { training: true, dropout: c.dropout };
      const posterior = diagonalGaussian(encodeMoments(P, c, images, options));
      const z = samplePosterior(posterior, eps);
      const features = decoderFeatures(P, c, conv1x1(P, 'post_quant_conv', z), options);
      let xRec = conv2d(P, 'decoder.conv_out', features);
      let xGan: tf.Tensor4D | undefined;
      if (adversarial) {
        kept = tf.keep(features);
        const split = adaptiveSplit(features, P(LAST_LAYER).shape as Shape4, disc.weight, discFactor, (v) => {
          dWeight = v;
        });
        [xRec, xGan] = tf.split(split(xRec), 2, 0) as [tf.Tensor4D, tf.Tensor4D];
      }
      const rec = reconstructionLoss(images, xRec, { lpips, perceptualWeight });
      const nll = nllLoss(rec, this.logvar);
      const kl = klLoss(posterior);
      let loss: tf.Tensor = tf.add(nll, tf.mul(kl, klWeight));
      terms = [tf.mean(rec), nll, kl];
      if (xGan && disc) {
        const logits = discriminatorForward(disc.model.P, disc.model.config, xGan, {
          training: true,
          onBatchStats: collectInto(batchStats),
        });
        const g = generatorLoss(logits);
        terms.push(g);
        // L_G enters the taped loss with weight 1; `adaptiveSplit` scales its gradient by d_weight·disc_factor.
        loss = tf.add(loss, g);
      }
      terms = terms.map((t) => tf.keep(t));
      return loss as tf.Scalar;
    };
    let grads: tf.NamedTensorMap;
    let values: number[];
    try {
      const out = tf.variableGrads(taped, vars);
      out.value.dispose();
      grads = out.grads;
      values = terms.map((t) => t.dataSync()[0]);
    } catch (error) {
      disposeStatistics(batchStats);
      throw error;
    } finally {
      tf.dispose([eps, ...terms, ...(kept ? [kept] : [])]);
    }
    const [rec, nll, kl, gLoss] = values;
    const byName = new Map<string, tf.Tensor>();
    this.aeNames.forEach((name, i) => {
      const g = grads[vars[i].name];
      if (g) byName.set(name, g);
    });
    const loss = nll + klWeight * kl + (adversarial ? dWeight * discFactor * gLoss : 0);
    return {
      loss,
      rec,
      nll,
      kl,
      discFactor,
      ...(adversarial ? { gLoss, dWeight } : {}),
      grads: byName,
      batchStats,
      discForwards: adversarial ? 1 : 0,
      dispose: () => {
        tf.dispose([...byName.values()]);
        disposeStatistics(batchStats);
      },
    };
  }

  /**
   * CompVis's optimizer-1 pass: a fresh forward of the (just updated) autoencoder with a new
   * posterior sample, then disc_factor·L_D(D(x), D(x̂.detach())), each image set through the
   * train-mode discriminator on its own (so each has its own BatchNorm batch statistics).
   */
  private discriminatorStep(
    images: tf.Tensor4D,
    rng: Rng,
    discFactor: number,
  ): Pick<AutoencoderStepResult, 'discLoss' | 'logitsReal' | 'logitsFake' | 'discSkipped'> {
    const disc = this.discriminator!;
    const optimizer = this.discOptimizer!;
    const model = disc.model;
    if (!(discFactor > 0)) {
      optimizer.zeroGradientStep(model.params, this.options.lr);
      return {};
    }
    const c = this.autoencoder.config;
    const [b, h, w] = images.shape;
    const f = this.autoencoder.factor;
    const eps = rng.normalTensor([b, h / f, w / f, c.embedDim]) as tf.Tensor4D;
    const lossFn = discriminatorLoss(disc.loss);
    const batchStats: BatchStatistics[] = [];
    let means: tf.Tensor[] = [];
    const vars = this.discNames.map((name) => model.params.get(name)!);
    let xRec: tf.Tensor4D | undefined;
    let discLoss: number;
    let logitsReal: number;
    let logitsFake: number;
    const byName = new Map<string, tf.Tensor>();
    try {
      xRec = tf.tidy(() => {
        const P = this.autoencoder.P;
        const options = { training: true, dropout: c.dropout };
        const posterior = diagonalGaussian(encodeMoments(P, c, images, options));
        return decodeLatent(P, c, samplePosterior(posterior, eps), options);
      });
      const fakes = xRec;
      const { value, grads } = tf.variableGrads(() => {
        const forward = (x: tf.Tensor4D) =>
          discriminatorForward(model.P, model.config, x, { training: true, onBatchStats: collectInto(batchStats) });
        const real = forward(images);
        const fake = forward(fakes);
        means = [tf.keep(tf.mean(real)), tf.keep(tf.mean(fake))];
        return tf.mul(lossFn(real, fake), discFactor) as tf.Scalar;
      }, vars);
      discLoss = value.dataSync()[0];
      value.dispose();
      [logitsReal, logitsFake] = means.map((t) => t.dataSync()[0]);
      this.discNames.forEach((name, i) => {
        const g = grads[vars[i].name];
        if (g) byName.set(name, g);
      });
    } catch (error) {
      disposeStatistics(batchStats);
      throw error;
    } finally {
      tf.dispose([eps, ...(xRec ? [xRec] : []), ...means]);
    }
    let discSkipped: string | undefined;
    if (!Number.isFinite(discLoss)) discSkipped = 'non-finite discriminator loss';
    else if (!allFinite(byName.values())) discSkipped = 'non-finite discriminator gradient';
    if (!discSkipped) {
      optimizer.update(model.params, byName, this.options.lr);
      applyBatchStatistics(model, batchStats, 2);
    }
    tf.dispose([...byName.values()]);
    disposeStatistics(batchStats);
    return { discLoss, logitsReal, logitsFake, ...(discSkipped ? { discSkipped } : {}) };
  }

  /** A copy of the step's state: global step, log-variance and both optimizers. */
  state(): AutoencoderTrainState {
    return {
      globalStep: this.globalStep,
      logvar: this.logvar.dataSync()[0],
      ae: this.aeOptimizer.state(),
      ...(this.discOptimizer ? { disc: this.discOptimizer.state() } : {}),
    };
  }

  /** Restores `state()` (checked first: on an error nothing changes). */
  load(state: AutoencoderTrainState): void {
    if (!Number.isInteger(state.globalStep) || state.globalStep < 0)
      throw new Error(`AutoencoderTrainState: globalStep must be a non-negative integer, got ${state.globalStep}`);
    if (!Number.isFinite(state.logvar)) throw new Error(`AutoencoderTrainState: logvar ${state.logvar}`);
    if (Boolean(state.disc) !== Boolean(this.discOptimizer))
      throw new Error(
        `AutoencoderTrainState: ${state.disc ? 'has' : 'lacks'} a discriminator optimizer, ` +
          `and this step ${this.discOptimizer ? 'has' : 'has no'} discriminator`,
      );
    this.aeOptimizer.validate(state.ae, this.aeParams);
    if (state.disc) this.discOptimizer!.validate(state.disc, this.discriminator!.model.params);
    this.aeOptimizer.load(state.ae, this.aeParams);
    if (state.disc) this.discOptimizer!.load(state.disc, this.discriminator!.model.params);
    tf.tidy(() => this.logvar.assign(tf.scalar(state.logvar)));
    this.globalStep = state.globalStep;
  }

  /** Frees the optimizers' state and the log-variance (the models stay their owners'). */
  dispose(): void {
    this.aeOptimizer.dispose();
    this.discOptimizer?.dispose();
    this.logvar.dispose();
  }

  private checkImages(x: tf.Tensor4D): void {
    const c = this.autoencoder.config;
    const f = this.autoencoder.factor;
    if (x.rank !== 4 || x.shape[3] !== c.inChannels)
      throw new Error(`AutoencoderTrainStep: images must be [B, H, W, ${c.inChannels}], got [${x.shape}]`);
    if (c.inChannels !== c.outChannels)
      throw new Error(
        `AutoencoderTrainStep: |x − x̂| needs inChannels = outChannels, got ${c.inChannels}, ${c.outChannels}`,
      );
    if (x.shape[1] % f !== 0 || x.shape[2] % f !== 0)
      throw new Error(
        `AutoencoderTrainStep: image sides must be multiples of f = ${f}, got ${x.shape[1]}×${x.shape[2]}`,
      );
    const disc = this.discriminator;
    if (disc) {
      const side = Math.min(...[x.shape[1], x.shape[2]].map((s) => discriminatorOutputSize(disc.model.config, s)));
      const layers = disc.model.config.layers;
      if (side < 1)
        throw new Error(
          `AutoencoderTrainStep: ${x.shape[1]}×${x.shape[2]} is too small for a ${layers}-layer discriminator`,
        );
    }
  }
}

type Shape4 = [number, number, number, number];

/**
 * The adaptive weight inside one backward pass. x̂ → [x̂; x̂] (the batch twice): the first half
 * feeds the NLL, the second the discriminator, so the backward pass receives ∂L_nll/∂x̂ and
 * ∂L_G/∂x̂ apart. With the last layer's input (`features`) they give ∂L_nll/∂W_L and ∂L_G/∂W_L
 * (CompVis's two `torch.autograd.grad` calls in `calculate_adaptive_weight`), hence d_weight; the
 * gradient passed on is ∂L_nll/∂x̂ + d_weight·disc_factor·∂L_G/∂x̂, i.e. that of CompVis's loss
 * with d_weight detached, through the ordinary backward of `decoder.conv_out` and everything before.
 * One forward and one backward, where computing the two gradients apart would take two of each.
 */
function adaptiveSplit(
  features: tf.Tensor4D,
  filterShape: Shape4,
  discWeight: number,
  discFactor: number,
  report: (dWeight: number) => void,
): (xRec: tf.Tensor4D) => tf.Tensor4D {
  // `features` is read by reference (the caller keeps it until the backward pass is done): saving it
  // would clone it inside the op, which tfjs's kernel leak check counts as a leak on wasm.
  return tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xRec = args[0] as tf.Tensor4D;
    return {
      value: tf.concat([xRec, xRec], 0),
      gradFunc: (dy: tf.Tensor) => {
        const h = features;
        const [dNll, dGan] = tf.split(dy, 2, 0) as [tf.Tensor4D, tf.Tensor4D];
        // decoder.conv_out is a 3×3 'same' convolution of stride 1 (layers' conv2d).
        const gNll = conv2dFilterGradient(h, dNll, filterShape, 1, 'same');
        const gGan = conv2dFilterGradient(h, dGan, filterShape, 1, 'same');
        const dWeight = adaptiveWeight(gNll, gGan, discWeight);
        report(dWeight);
        return tf.add(dNll, tf.mul(dGan, dWeight * discFactor));
      },
    };
  }) as (xRec: tf.Tensor4D) => tf.Tensor4D;
}

function collectInto(stats: BatchStatistics[]) {
  return (norm: string, mean: tf.Tensor1D, variance: tf.Tensor1D, count: number) => {
    stats.push({ norm, mean: tf.keep(mean), variance: tf.keep(variance), count });
  };
}

/**
 * PyTorch's train-mode BatchNorm update, applied once a step is accepted (so a non-finite batch
 * leaves the buffers alone): r ← (1 − m)·r + m·stat, the variance unbiased by n/(n − 1), and
 * num_batches_tracked + 1 per forward, as `PatchDiscriminator.forward` does.
 */
function applyBatchStatistics(model: PatchDiscriminator, stats: BatchStatistics[], forwards: number): void {
  const m = BATCH_NORM_MOMENTUM;
  const blend = (buffer: string, stat: tf.Tensor) => {
    const r = model.buffers.get(buffer)!;
    tf.tidy(() => r.assign(tf.add(tf.mul(r, 1 - m), tf.mul(stat, m))));
  };
  for (const s of stats) {
    const unbiased = s.count > 1 ? s.count / (s.count - 1) : 1;
    blend(`${s.norm}.running_mean`, s.mean);
    tf.tidy(() => blend(`${s.norm}.running_var`, tf.mul(s.variance, unbiased)));
  }
  model.numBatchesTracked += forwards;
}

function disposeStatistics(stats: BatchStatistics[]): void {
  for (const s of stats) tf.dispose([s.mean, s.variance]);
}

/** Whether every value of every tensor is finite: x·0 is 0 for finite x and NaN for ±∞ and NaN. */
function allFinite(tensors: Iterable<tf.Tensor>): boolean {
  const list = [...tensors];
  if (list.length === 0) return true;
  return tf.tidy(() => tf.addN(list.map((t) => tf.sum(tf.mul(t, 0)))).dataSync()[0] === 0);
}
