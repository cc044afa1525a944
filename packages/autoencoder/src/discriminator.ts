import * as tf from '@tensorflow/tfjs-core';
import { type ParamSpec, Rng } from '@matryoshka-ts/core';
import { convBias } from '@matryoshka-ts/kernels';
import {
  type AllocateOptions,
  type Params,
  allocateParams,
  initialValue,
  paramCountOf,
  paramsFrom,
  readWeights,
} from '@matryoshka-ts/layers';

/**
 * The PatchGAN discriminator of the autoencoder's training loss: taming-transformers'
 * `NLayerDiscriminator` (pix2pix's), which CompVis's `LPIPSWithDiscriminator` builds with
 * `use_actnorm=False`, i.e. BatchNorm. NHWC, HWIO filters, PyTorch state-dict names
 * (`main.<index of the module in nn.Sequential>.<weight|bias|running_mean|running_var>`).
 */

export interface DiscriminatorConfig {
  /** input_nc: channels of the images judged (3; more for a conditional discriminator). */
  inChannels: number;
  /** ndf: filters of the first convolution; later ones have ndf·min(2ⁿ, 8). */
  ndf: number;
  /** n_layers: stride-2 convolutions (the receptive field grows with them). */
  layers: number;
}

/** `LPIPSWithDiscriminator`'s: input_nc 3, ndf 64, disc_num_layers 3 (70×70 receptive field). */
export const DEFAULT_DISCRIMINATOR: DiscriminatorConfig = { inChannels: 3, ndf: 64, layers: 3 };

/** Every convolution is 4×4 with zero padding 1 (kw, padw in taming). */
const KERNEL = 4;
const PAD: [[0, 0], [number, number], [number, number], [0, 0]] = [
  [0, 0],
  [1, 1],
  [1, 1],
  [0, 0],
];
export const LEAKY_SLOPE = 0.2;
/** nn.BatchNorm2d's defaults. */
export const BATCH_NORM_EPS = 1e-5;
export const BATCH_NORM_MOMENTUM = 0.1;
/** weights_init: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02). */
export const INIT_STD = 0.02;

/** One conv (→ BatchNorm) (→ LeakyReLU) stage, named by its modules' indices in `main`. */
export interface DiscriminatorStage {
  conv: string;
  cin: number;
  cout: number;
  stride: 1 | 2;
  /** Only the first and last convs have a bias: the others feed a BatchNorm, which would cancel it. */
  bias: boolean;
  /** The BatchNorm module's name, if any. */
  norm?: string;
  /** Followed by LeakyReLU(0.2) (all but the last). */
  act: boolean;
}

/** The stages in order; indices count the LeakyReLU modules too, exactly as `nn.Sequential` does. */
export function discriminatorPlan(c: DiscriminatorConfig): DiscriminatorStage[] {
  const width = (n: number) => c.ndf * Math.min(2 ** n, 8);
  const stages: DiscriminatorStage[] = [
    { conv: 'main.0', cin: c.inChannels, cout: c.ndf, stride: 2, bias: true, act: true },
  ];
  let index = 2; // main.1 is the first LeakyReLU.
  const push = (n: number, stride: 1 | 2) => {
    stages.push({
      conv: `main.${index}`,
      cin: width(n - 1),
      cout: width(n),
      stride,
      bias: false,
      norm: `main.${index + 1}`,
      act: true,
    });
    index += 3; // conv, BatchNorm, LeakyReLU
  };
  for (let n = 1; n < c.layers; n++) push(n, 2);
  push(c.layers, 1);
  stages.push({ conv: `main.${index}`, cin: width(c.layers), cout: 1, stride: 1, bias: true, act: false });
  return stages;
}

/** Side of the logit map for an input side `size`: ⌊size/2⌋ per stride-2 conv, then −1 per stride-1 conv. */
export function discriminatorOutputSize(c: DiscriminatorConfig, size: number): number {
  let s = size;
  for (let n = 0; n < c.layers; n++) s = Math.floor(s / 2); // ⌊(s + 2 − 4)/2⌋ + 1
  return s - 2; // two stride-1 convs: s + 2 − 4 + 1 each
}

/**
 * Trainable parameters in state-dict order. Conv weights are N(0, 0.02) and BatchNorm biases 0 as
 * in `weights_init`; conv biases keep PyTorch's default (weights_init does not touch them).
 * BatchNorm weights are N(1, 0.02) in taming; `ParamInit` has no mean, so the spec says `ones` (the
 * mean) and `allocateDiscriminatorParams` adds the N(0, 0.02) jitter.
 */
export function discriminatorSpecs(c: DiscriminatorConfig): ParamSpec[] {
  const specs: ParamSpec[] = [];
  for (const s of discriminatorPlan(c)) {
    const fanIn = s.cin * KERNEL * KERNEL;
    specs.push({
      name: `${s.conv}.weight`,
      shape: [KERNEL, KERNEL, s.cin, s.cout],
      layout: 'conv2d',
      init: { kind: 'normal', std: INIT_STD },
    });
    if (s.bias)
      specs.push({ name: `${s.conv}.bias`, shape: [s.cout], layout: 'vector', init: { kind: 'fanInUniform', fanIn } });
    if (s.norm) {
      specs.push({ name: `${s.norm}.weight`, shape: [s.cout], layout: 'vector', init: { kind: 'ones' } });
      specs.push({ name: `${s.norm}.bias`, shape: [s.cout], layout: 'vector', init: { kind: 'zeros' } });
    }
  }
  return specs;
}

/**
 * BatchNorm's buffers (not trained): `running_mean` (0) and `running_var` (1). PyTorch's state dict
 * also holds `num_batches_tracked` (int64), which only matters with momentum None; the class counts it.
 */
export function discriminatorBufferSpecs(c: DiscriminatorConfig): ParamSpec[] {
  return discriminatorPlan(c).flatMap((s) =>
    s.norm
      ? [
          { name: `${s.norm}.running_mean`, shape: [s.cout], layout: 'vector', init: { kind: 'zeros' } },
          { name: `${s.norm}.running_var`, shape: [s.cout], layout: 'vector', init: { kind: 'ones' } },
        ]
      : [],
  ) as ParamSpec[];
}

const isNormWeight = (c: DiscriminatorConfig) => {
  const names = new Set(discriminatorPlan(c).flatMap((s) => (s.norm ? [`${s.norm}.weight`] : [])));
  return (name: string) => names.has(name);
};

/**
 * Initial values as taming's `weights_init`, drawn from one seeded stream in spec order: each spec's
 * init, and BatchNorm weights 1 + N(0, 0.02).
 */
export function discriminatorInitialWeights(c: DiscriminatorConfig, seed = 0): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const normWeight = isNormWeight(c);
  const out = new Map<string, Float32Array>();
  for (const spec of discriminatorSpecs(c)) {
    const values = initialValue(spec, rng);
    if (normWeight(spec.name)) for (let i = 0; i < values.length; i++) values[i] += rng.normal() * INIT_STD;
    out.set(spec.name, values);
  }
  return out;
}

/** Trainable variables initialised as taming's `weights_init` (or from `options.weights` where given). */
export function allocateDiscriminatorParams(
  c: DiscriminatorConfig,
  options: AllocateOptions = {},
): Map<string, tf.Variable> {
  const weights = discriminatorInitialWeights(c, options.seed);
  for (const [name, values] of options.weights ?? []) weights.set(name, values);
  return allocateParams(discriminatorSpecs(c), { weights });
}

// ---------------------------------------------------------------- forward

export interface BatchNormOptions {
  /**
   * true (default): normalise by the batch's own statistics (mean and biased variance over B, H, W),
   * as CompVis does: its discriminator stays in train mode. false: by the running statistics.
   */
  training?: boolean;
  /** Lookup of `<norm>.running_mean` / `<norm>.running_var`; needed when `training` is false. */
  running?: Params;
  /** Called with each BatchNorm's batch statistics in train mode (count = B·H·W values per channel). */
  onBatchStats?: (norm: string, mean: tf.Tensor1D, variance: tf.Tensor1D, count: number) => void;
}

/** y = (x − μ)/√(σ² + 1e−5)·γ + β per channel; μ, σ² from the batch (train) or the running buffers (eval). */
export function batchNorm(P: Params, name: string, x: tf.Tensor4D, options: BatchNormOptions = {}): tf.Tensor4D {
  let mean: tf.Tensor;
  let variance: tf.Tensor;
  if (options.training ?? true) {
    ({ mean, variance } = tf.moments(x, [0, 1, 2]));
    const [b, h, w] = x.shape;
    options.onBatchStats?.(name, mean as tf.Tensor1D, variance as tf.Tensor1D, b * h * w);
  } else {
    if (!options.running) throw new Error(`batchNorm '${name}': eval mode needs the running statistics`);
    mean = options.running(`${name}.running_mean`);
    variance = options.running(`${name}.running_var`);
  }
  const scale = tf.mul(tf.rsqrt(tf.add(variance, BATCH_NORM_EPS)), P(`${name}.weight`));
  return tf.add(tf.mul(tf.sub(x, mean), scale), P(`${name}.bias`));
}

/** 4×4 conv, zero padding 1 on every side (explicit: tfjs's 'same' would pad stride 2 asymmetrically). */
function conv4x4(P: Params, s: DiscriminatorStage, x: tf.Tensor4D): tf.Tensor4D {
  const bias = s.bias ? P(`${s.conv}.bias`) : tf.zeros([s.cout]);
  return convBias(x, P(`${s.conv}.weight`) as tf.Tensor4D, bias, { strides: s.stride, pad: PAD });
}

/** Images [B, H, W, inChannels] → patch logits [B, h, w, 1] (h = discriminatorOutputSize(H)). */
export function discriminatorForward(
  P: Params,
  c: DiscriminatorConfig,
  x: tf.Tensor4D,
  options: BatchNormOptions = {},
): tf.Tensor4D {
  let h = x;
  for (const s of discriminatorPlan(c)) {
    h = conv4x4(P, s, h);
    if (s.norm) h = batchNorm(P, s.norm, h, options);
    if (s.act) h = tf.leakyRelu(h, LEAKY_SLOPE);
  }
  return h;
}

// ---------------------------------------------------------------- model

export interface DiscriminatorCallOptions {
  /** Parameters to use instead of the model's own (tensors being differentiated). */
  params?: Params;
  /** Batch statistics (default: true, as CompVis trains it) or running statistics. */
  training?: boolean;
  /** Update the running statistics (default: when training, as every train-mode call in PyTorch does). */
  updateStats?: boolean;
}

/** The PatchGAN with its weights and BatchNorm buffers. */
export class PatchDiscriminator {
  readonly config: DiscriminatorConfig;
  readonly specs: ParamSpec[];
  readonly params: Map<string, tf.Variable>;
  /** running_mean / running_var, non-trainable. */
  readonly buffers: Map<string, tf.Variable>;
  /** BatchNorm's num_batches_tracked (the same for every layer). */
  numBatchesTracked = 0;

  constructor(config: DiscriminatorConfig = DEFAULT_DISCRIMINATOR, options: AllocateOptions = {}) {
    for (const [key, v] of Object.entries(config))
      if (!Number.isInteger(v) || v < 1) throw new Error(`discriminator ${key} must be a positive integer, got ${v}`);
    this.config = { ...config };
    this.specs = discriminatorSpecs(this.config);
    this.params = allocateDiscriminatorParams(this.config, options);
    this.buffers = new Map(discriminatorBufferSpecs(this.config).map((s) => [s.name, bufferVariable(s)]));
  }

  get paramCount(): number {
    return paramCountOf(this.specs);
  }

  get P(): Params {
    return paramsFrom(this.params);
  }

  forward(x: tf.Tensor4D, options: DiscriminatorCallOptions = {}): tf.Tensor4D {
    const c = this.config;
    if (x.rank !== 4 || x.shape[3] !== c.inChannels)
      throw new Error(`discriminator: images must be [B, H, W, ${c.inChannels}], got [${x.shape}]`);
    if (Math.min(discriminatorOutputSize(c, x.shape[1]), discriminatorOutputSize(c, x.shape[2])) < 1)
      throw new Error(`discriminator: ${x.shape[1]}×${x.shape[2]} is too small for ${c.layers} layers`);
    const training = options.training ?? true;
    const update = training && (options.updateStats ?? true);
    const logits = tf.tidy(() =>
      discriminatorForward(options.params ?? this.P, c, x, {
        training,
        running: paramsFrom(this.buffers),
        onBatchStats: update ? (name, mean, variance, n) => this.track(name, mean, variance, n) : undefined,
      }),
    );
    if (update) this.numBatchesTracked++;
    return logits;
  }

  /** Overwrites weights or buffers by name (our layouts); absent names keep their values. */
  setWeights(values: Map<string, Float32Array>): void {
    for (const [name, data] of values) {
      const v = this.params.get(name) ?? this.buffers.get(name);
      if (!v) throw new Error(`unknown discriminator parameter '${name}'`);
      if (data.length !== v.size) throw new Error(`'${name}': ${data.length} values for shape [${v.shape}]`);
      tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')));
    }
  }

  /** Every weight and buffer (our names and layouts). */
  getWeights(): Map<string, Float32Array> {
    return new Map([...readWeights(this.params), ...readWeights(this.buffers)]);
  }

  dispose(): void {
    for (const v of [...this.params.values(), ...this.buffers.values()]) v.dispose();
    this.params.clear();
    this.buffers.clear();
  }

  /** PyTorch's update: r ← (1 − m)·r + m·stat, with the unbiased variance σ²·n/(n − 1) for running_var. */
  private track(name: string, mean: tf.Tensor1D, variance: tf.Tensor1D, n: number): void {
    const m = BATCH_NORM_MOMENTUM;
    const unbiased = n > 1 ? n / (n - 1) : 1;
    const blend = (buffer: string, stat: tf.Tensor) => {
      const r = this.buffers.get(`${name}.${buffer}`)!;
      tf.tidy(() => r.assign(tf.add(tf.mul(r, 1 - m), tf.mul(stat, m))));
    };
    blend('running_mean', mean);
    blend('running_var', tf.mul(variance, unbiased));
  }
}

/** A non-trainable variable holding a buffer's initial value (0 or 1). */
function bufferVariable(spec: ParamSpec): tf.Variable {
  const value = spec.init.kind === 'ones' ? tf.ones(spec.shape) : tf.zeros(spec.shape);
  const v = tf.variable(value, false);
  value.dispose();
  return v;
}
