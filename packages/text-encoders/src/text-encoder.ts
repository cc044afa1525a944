import type * as tf from '@tensorflow/tfjs-core';

/** Token features of a batch of captions. */
export interface EncodedText {
  /** [B, L, D] features (zero at padded positions). */
  tokens: tf.Tensor3D;
  /** [B, L], 1 for real tokens and 0 for padding. */
  mask: tf.Tensor2D;
}

/**
 * A frozen text encoder: captions in, token features and a mask out. Models condition on its
 * output through their own projection and text head; the encoder itself is never trained.
 */
export interface TextEncoder {
  /** Stable identifier (name, version, width): keys caches and is recorded in run configs. */
  readonly id: string;
  /** Width D of the token features. */
  readonly width: number;
  /** Maximum number of tokens L per caption. */
  readonly maxTokens: number;
  encode(captions: string[]): EncodedText;
}
