import * as tf from '@tensorflow/tfjs-core';
import type { ParamSpec } from '@matryoshka-ts/core';
import {
  type AllocateOptions,
  type Params,
  allocateParams,
  assignWeights,
  conv1x1,
  convSpecs,
  paramCountOf,
  paramsFrom,
  readWeights,
} from '@matryoshka-ts/layers';
import { type AutoencoderKLConfig, downsamplingFactor, validateConfig } from './config.js';
import { decoderForward, decoderSpecs } from './decoder.js';
import { encoderForward, encoderSpecs } from './encoder.js';
import { type DiagonalGaussian, diagonalGaussian } from './posterior.js';

/** Every parameter in CompVis's state-dict order and names: encoder, decoder, quant_conv, post_quant_conv. */
export function autoencoderSpecs(c: AutoencoderKLConfig): ParamSpec[] {
  return [
    ...encoderSpecs(c),
    ...decoderSpecs(c),
    ...convSpecs('quant_conv', 1, 2 * c.zChannels, 2 * c.embedDim),
    ...convSpecs('post_quant_conv', 1, c.embedDim, c.zChannels),
  ];
}

export interface AutoencoderCallOptions {
  /** Parameters to use instead of the model's own (tensors being differentiated, EMA weights). */
  params?: Params;
  /** Enables dropout. */
  training?: boolean;
}

/** moments = quant_conv(encoder(x)): [B, H/f, W/f, 2·embedDim], mean then log-variance (unclamped). */
export function encodeMoments(
  P: Params,
  c: AutoencoderKLConfig,
  x: tf.Tensor4D,
  options: AutoencoderCallOptions = {},
): tf.Tensor4D {
  return conv1x1(P, 'quant_conv', encoderForward(P, c, x, options));
}

/** decoder(post_quant_conv(z)): [B, h·f, w·f, outChannels]. */
export function decodeLatent(
  P: Params,
  c: AutoencoderKLConfig,
  z: tf.Tensor4D,
  options: AutoencoderCallOptions = {},
): tf.Tensor4D {
  return decoderForward(P, c, conv1x1(P, 'post_quant_conv', z), options);
}

/**
 * The KL autoencoder of latent diffusion with its weights: `encode` gives the posterior over
 * latents, `decode` maps latents back to images. Images are NHWC in [−1, 1].
 */
export class AutoencoderKL {
  readonly config: AutoencoderKLConfig;
  readonly specs: ParamSpec[];
  readonly params: Map<string, tf.Variable>;

  constructor(config: AutoencoderKLConfig, options: AllocateOptions = {}) {
    this.config = validateConfig(config);
    this.specs = autoencoderSpecs(this.config);
    this.params = allocateParams(this.specs, options);
  }

  /** f: image pixels per latent cell along each side. */
  get factor(): number {
    return downsamplingFactor(this.config);
  }

  get paramCount(): number {
    return paramCountOf(this.specs);
  }

  get P(): Params {
    return paramsFrom(this.params);
  }

  /** The posterior q(z|x); the caller disposes it (`disposePosterior`). */
  encode(x: tf.Tensor4D, options: AutoencoderCallOptions = {}): DiagonalGaussian {
    this.checkImage(x);
    const P = options.params ?? this.P;
    const moments = tf.tidy(() => encodeMoments(P, this.config, x, options));
    const posterior = diagonalGaussian(moments);
    moments.dispose();
    return posterior;
  }

  /** Images from latents [B, h, w, embedDim]. */
  decode(z: tf.Tensor4D, options: AutoencoderCallOptions = {}): tf.Tensor4D {
    if (z.rank !== 4 || z.shape[3] !== this.config.embedDim)
      throw new Error(`decode: latents must be [B, h, w, ${this.config.embedDim}], got [${z.shape}]`);
    const P = options.params ?? this.P;
    return tf.tidy(() => decodeLatent(P, this.config, z, options));
  }

  setWeights(values: Map<string, Float32Array>): void {
    assignWeights(this.params, values);
  }

  getWeights(): Map<string, Float32Array> {
    return readWeights(this.params);
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }

  private checkImage(x: tf.Tensor4D): void {
    if (x.rank !== 4 || x.shape[3] !== this.config.inChannels)
      throw new Error(`encode: images must be [B, H, W, ${this.config.inChannels}], got [${x.shape}]`);
  }
}
