import * as tf from '@tensorflow/tfjs-core';
import {
  type DiffusionLevel,
  type DiffusionModel,
  type ParamSpec,
  framesToTiled,
  sizeOf,
  tiledToFrames,
} from '@matryoshka-ts/core';
import { type LevelKind, type NestedUNetConfig, type ResolvedConfig, resolveConfig } from './config.js';
import { type ConditioningInput, type DebugSink, type SharedConditioning, sharedConditioning } from './conditioning.js';
import {
  type Params,
  allocateParams,
  assignWeights,
  conv2d,
  paramCountOf,
  paramsFrom,
  readWeights,
  silu,
} from '@matryoshka-ts/layers';
import { type LevelContext, downPath, inputLayer, levelSpecs, midBlock, outputLayer, upPath } from './unet-level.js';
import { augmentationEmbedding, microConditioning, timeEmbedding } from './time-embedding.js';

/** Inputs of one denoising call. Images are NHWC, one per level, level 0 (highest resolution) first. */
export interface NestedUNetInputs extends ConditioningInput {
  /**
   * Noisy images per level. A level may hold fewer samples than the level inside it
   * (mixed-resolution batches): it then sees the first b samples of the batch.
   */
  x: tf.Tensor4D[];
  /** Time input per sample of the full (innermost) batch: the 0-based step index in the discrete convention. */
  times: tf.Tensor1D | number[];
  /** Micro-conditioning values per sample (defaults from the config when absent). */
  micro?: Record<string, tf.Tensor1D | number[]>;
}

export interface ForwardOptions {
  /** Parameters to use instead of the model's own (EMA weights, tensors being differentiated). */
  params?: Params;
  /** Enables dropout. */
  training?: boolean;
  /** Receives named intermediates (`time_mlp.levelN`, `micro_mlp.levelN`, `lm_proj`, `pooled_text`, `cond_emb`). */
  debug?: DebugSink;
}

/** Parameter specs of a whole model, outermost level first, in the official code's order. */
export function nestedUNetSpecs(config: NestedUNetConfig | ResolvedConfig): ParamSpec[] {
  const resolved = 'levels' in config ? config : resolveConfig(config);
  return levelSpecs(resolved, 0);
}

/** Parameters per level, each excluding the levels inside it; the innermost includes the shared text/label layers. */
export function countParams(config: NestedUNetConfig | ResolvedConfig): {
  levels: Array<{ resolution: number; frames: number; kind: LevelKind; params: number }>;
  total: number;
} {
  const resolved = 'levels' in config ? config : resolveConfig(config);
  const specs = levelSpecs(resolved, 0);
  const levels = resolved.levels.map((level) => {
    const deeper = `${level.prefix}inner_unet.`;
    const own = specs.filter(
      (s) => s.name.startsWith(level.prefix) && !(s.name.startsWith(deeper) && !level.isInnermost),
    );
    const params = own.reduce((n, s) => n + sizeOf(s.shape), 0);
    return { resolution: level.resolution, frames: level.frames, kind: level.kind, params };
  });
  return { levels, total: specs.reduce((n, s) => n + sizeOf(s.shape), 0) };
}

/**
 * Runs level `index` and every level inside it. `feature` is the parent's adapter output added
 * to this level's conv_in output. Returns each level's image output and this level's last
 * feature map (before its output norm) for the parent's out-adapter.
 */
function runLevel(
  P: Params,
  config: ResolvedConfig,
  index: number,
  inputs: NestedUNetInputs,
  times: tf.Tensor1D,
  shared: SharedConditioning,
  feature: tf.Tensor4D | undefined,
  options: ForwardOptions,
  lowRes: { image: tf.Tensor4D; augTimes: tf.Tensor1D } | undefined,
): { outputs: tf.Tensor4D[]; feature: tf.Tensor4D } {
  const level = config.levels[index];
  const x = inputs.x[index];
  const batch = times.shape[0];
  // Rows are frames: this level sees its first `b` samples, each `level.frames` rows.
  const b = x.shape[0] / level.frames;

  let temb = timeEmbedding(P, level.prefix, times, level.timeEmbedDim);
  options.debug?.(`time_mlp.level${index}`, temb);
  if (shared.embedding) temb = tf.add(temb, shared.embedding);
  const micro = microConditioning(P, level.prefix, level.microConditioning, inputs.micro, batch, level.timeEmbedDim);
  if (micro) {
    options.debug?.(`micro_mlp.level${index}`, micro);
    temb = tf.add(temb, micro);
  }
  if (lowRes) temb = tf.add(temb, augmentationEmbedding(P, level.prefix, lowRes.augTimes, level.timeEmbedDim));
  const first = <T extends tf.Tensor>(t: T, rows = b): T => (t.shape[0] === rows ? t : (tf.slice(t, 0, rows) as T));
  const ctx: LevelContext = {
    P,
    config,
    level,
    tembAct: silu(first(temb)),
    text: shared.text && { tokens: first(shared.text.tokens), mask: shared.text.mask && first(shared.text.mask) },
    training: options.training ?? false,
    debug: options.debug,
  };

  // Level 0 of a super-resolution stage sees the low-resolution image, bilinearly upsampled
  // (half-pixel centres, as PyTorch's align_corners=False).
  const condition =
    lowRes && index === 0
      ? first(tf.image.resizeBilinear(lowRes.image, [level.resolution, level.resolution], false, true))
      : undefined;
  let h = inputLayer(P, level, x, condition, options.debug);
  if (feature) h = tf.add(h, feature);
  const down = downPath(ctx, h);
  h = down.h;
  let innerOutputs: tf.Tensor4D[] = [];
  if (level.isInnermost) {
    if (level.midBlock) h = midBlock(ctx, h);
  } else {
    // Frames at the bottleneck: one after a temporal level's last stage, else the level's clip.
    const frames = level.kind === 'temporal' ? 1 : level.frames;
    const innerRows = inputs.x[index + 1].shape[0];
    let toInner = level.innerInput
      ? adapter(P, `${level.prefix}in_adapter`, h, frames, index, options.debug)
      : undefined;
    if (toInner && innerRows > toInner.shape[0]) {
      // Samples the outer level does not see get a zero feature.
      const [rows, hh, ww, c] = toInner.shape;
      toInner = tf.concat([toInner, tf.zeros([innerRows - rows, hh, ww, c])], 0) as tf.Tensor4D;
    }
    const inner = runLevel(P, config, index + 1, inputs, times, shared, toInner, options, lowRes);
    const fromInner = adapter(P, `${level.prefix}out_adapter`, inner.feature, frames, index, options.debug);
    h = tf.add(h, first(fromInner, b * frames));
    innerOutputs = inner.outputs;
  }
  h = upPath(ctx, h, down.skips);
  return { outputs: [outputLayer(P, level, h), ...innerOutputs], feature: h };
}

/**
 * An in/out adapter (3×3 conv) between a level and the level inside it. Over a clip (a spatial
 * level around a temporal one) it convolves the clip tiled as one image, as the official code
 * does: at tile borders its kernel sees the neighbouring frame's pixels.
 */
function adapter(
  P: Params,
  name: string,
  x: tf.Tensor4D,
  frames: number,
  index: number,
  debug: DebugSink | undefined,
): tf.Tensor4D {
  const out = conv2d(P, name, frames > 1 ? framesToTiled(x, frames) : x);
  debug?.(`${name.slice(name.lastIndexOf('.') + 1)}.level${index}`, out);
  return frames > 1 ? tiledToFrames(out, frames) : out;
}

function checkInputs(config: ResolvedConfig, inputs: NestedUNetInputs, times: tf.Tensor1D): void {
  const n = config.levels.length;
  if (inputs.x.length !== n)
    throw new Error(`expected ${n} images (one per level, highest resolution first), got ${inputs.x.length}`);
  const batch = times.shape[0];
  const samples = (i: number) => inputs.x[i].shape[0] / config.levels[i].frames;
  config.levels.forEach((level, i) => {
    const shape = inputs.x[i].shape;
    const rows = level.frames > 1 ? `b·${level.frames}` : 'b';
    const want = `[${rows}, ${level.resolution}, ${level.resolution}, ${config.imageChannels}]`;
    if (
      shape.length !== 4 ||
      shape[1] !== level.resolution ||
      shape[2] !== level.resolution ||
      shape[3] !== config.imageChannels ||
      !Number.isInteger(samples(i))
    ) {
      const clip = level.frames > 1 ? ` (${level.frames} frames per sample, frames folded into the batch)` : '';
      throw new Error(`level ${i} input has shape [${shape}], expected NHWC ${want}${clip}`);
    }
    const next = i + 1 < n ? samples(i + 1) : batch;
    if (samples(i) > next)
      throw new Error(`level ${i} holds ${samples(i)} samples, more than the ${next} of the level inside it`);
  });
  if (samples(n - 1) !== batch) {
    throw new Error(`the innermost level holds ${samples(n - 1)} samples but ${batch} times were given`);
  }
}

/** A super-resolution stage's low-resolution image and augmentation steps, checked. */
function lowResInput(
  config: ResolvedConfig,
  inputs: NestedUNetInputs,
  times: tf.Tensor1D,
): { image: tf.Tensor4D; augTimes: tf.Tensor1D } | undefined {
  if (!config.lowResCondition) {
    if (inputs.lowRes) throw new Error('lowRes was given but the model is not a super-resolution stage');
    return undefined;
  }
  const { lowRes, augTimes } = inputs;
  if (!lowRes || augTimes === undefined)
    throw new Error('this super-resolution stage needs lowRes (the low-resolution image) and augTimes');
  const batch = times.shape[0];
  const top = config.levels[0].resolution;
  if (lowRes.shape[0] !== batch || lowRes.shape[3] !== config.imageChannels || lowRes.shape[1] > top) {
    throw new Error(
      `lowRes has shape [${lowRes.shape}], expected NHWC [${batch}, r ≤ ${top}, r, ${config.imageChannels}]`,
    );
  }
  const aug = Array.isArray(augTimes) ? tf.tensor1d(augTimes, 'float32') : tf.cast(augTimes, 'float32');
  if (aug.shape[0] !== batch) throw new Error(`augTimes has ${aug.shape[0]} entries for a batch of ${batch}`);
  return { image: lowRes, augTimes: aug };
}

/**
 * The full NestedUNet forward pass as a pure function of parameters: one output per level (a v-, ε- or
 * x0-prediction).
 */
export function nestedUNetForward(
  P: Params,
  config: ResolvedConfig,
  inputs: NestedUNetInputs,
  options: ForwardOptions = {},
): tf.Tensor4D[] {
  const times = Array.isArray(inputs.times) ? tf.tensor1d(inputs.times, 'float32') : tf.cast(inputs.times, 'float32');
  checkInputs(config, inputs, times);
  const shared = sharedConditioning(P, config, inputs, options.debug);
  return runLevel(P, config, 0, inputs, times, shared, undefined, options, lowResInput(config, inputs, times)).outputs;
}

export interface NestedUNetOptions {
  /** Seed for the initial weights (default 0). */
  seed?: number;
  /** Start from these values (our names and layouts) instead of a random initialisation. */
  weights?: Map<string, Float32Array>;
}

/**
 * A NestedUNet with its weights: a UNet per level, each inner level in place of its parent's mid
 * block, joined by zero-initialised adapters. With one level it is a plain UNet.
 */
export class NestedUNet implements DiffusionModel {
  readonly config: ResolvedConfig;
  readonly specs: ParamSpec[];
  readonly params: Map<string, tf.Variable>;
  /** The levels as the pipelines see them (image channels from the config; a video level's frames). */
  readonly levels: readonly DiffusionLevel[];

  constructor(config: NestedUNetConfig, options: NestedUNetOptions = {}) {
    this.config = resolveConfig(config);
    this.specs = levelSpecs(this.config, 0);
    const channels = this.config.imageChannels;
    this.levels = this.config.levels.map((l) => ({ resolution: l.resolution, channels, frames: l.frames }));
    this.params = allocateParams(this.specs, options);
  }

  /** Number of parameters. */
  get paramCount(): number {
    return paramCountOf(this.specs);
  }

  /** Our parameters as a `Params` getter. */
  get P(): Params {
    return paramsFrom(this.params);
  }

  /** One denoising call: an output per level (NHWC), level 0 first. Intermediate tensors are freed. */
  forward(inputs: NestedUNetInputs, options: ForwardOptions = {}): tf.Tensor4D[] {
    const P = options.params ?? this.P;
    if (!options.debug) return tf.tidy(() => nestedUNetForward(P, this.config, inputs, options));
    const sink = options.debug;
    return tf.tidy(() =>
      nestedUNetForward(P, this.config, inputs, { ...options, debug: (name, t) => sink(name, tf.keep(t.clone())) }),
    );
  }

  /** Overwrites weights by name (our layouts). Unknown names are an error; absent names keep their values. */
  setWeights(values: Map<string, Float32Array>): void {
    assignWeights(this.params, values);
  }

  /** Copies every weight out (our names and layouts). */
  getWeights(): Map<string, Float32Array> {
    return readWeights(this.params);
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}
