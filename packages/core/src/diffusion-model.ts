import type * as tf from '@tensorflow/tfjs-core';

/**
 * One level of a diffusion model: the shape of the images it denoises. Levels are ordered from
 * the highest resolution (level 0) to the lowest, everywhere.
 */
export interface DiffusionLevel {
  /** Height and width in pixels (or latent cells). */
  readonly resolution: number;
  /** Channels per pixel: 3 for RGB, 1 for grey, 4 for a KL autoencoder's latents. */
  readonly channels: number;
  /**
   * Frames per sample: 1 for images. A video level folds its frames into the batch: a batch of B
   * clips is one [B·T, H, W, C] tensor, clip-major (sample b's frame f is row b·T + f), so the
   * losses and samplers keep their NHWC signatures.
   */
  readonly frames: number;
}

/** What a batch is conditioned on; each field is present where the model takes it. */
export interface Conditioning {
  /** Frozen text-encoder features [B, L, D]. */
  tokens?: tf.Tensor3D;
  /** [B, L], 1 for real tokens, 0 for padding. */
  mask?: tf.Tensor2D;
  /** Class ids [B] (int32); id `numClasses` is the null label. */
  labels?: tf.Tensor1D;
  /**
   * A cascaded super-resolution stage's low-resolution image (NHWC, any size up to the stage's),
   * already noise-augmented; the model upsamples it bilinearly and concatenates it to its input.
   */
  lowRes?: tf.Tensor4D;
  /** The noise-augmentation step of `lowRes` per sample (0-based step index, like `times`). */
  augTimes?: tf.Tensor1D | number[];
}

/** One denoising call's inputs: a noisy image per level (NHWC, level 0 first) and the times. */
export interface DiffusionInputs extends Conditioning {
  x: tf.Tensor4D[];
  /** The network's time input per sample of the innermost level's batch (0-based step index). */
  times: tf.Tensor1D | number[];
}

/** Parameters by name: the model's own, EMA weights, or tensors being differentiated. */
export type ParamLookup = (name: string) => tf.Tensor;

/**
 * A denoising network over one or more levels: the NestedUNet, and later a cascade stage, a
 * latent model or a video model. The training step, generation and runs are written against this.
 */
export interface DiffusionModel {
  /** The levels, level 0 (the highest resolution) first. */
  readonly levels: readonly DiffusionLevel[];
  /** The trainable parameters by name. */
  readonly params: Map<string, tf.Variable>;
  /** One prediction per level (ε, x0 or v, as trained), same shapes as `inputs.x`. */
  forward(inputs: DiffusionInputs, options?: { params?: ParamLookup; training?: boolean }): tf.Tensor4D[];
  /** Frees the parameters. */
  dispose(): void;
}
