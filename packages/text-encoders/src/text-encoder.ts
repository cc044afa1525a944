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

/** Token features of a batch of captions as plain arrays (what an async encoder returns). */
export interface EncodedTextArrays {
  /** [B, L, D] features, row-major (zero at padded positions). */
  features: Float32Array;
  /** [B, L], 1 for real tokens and 0 for padding. */
  mask: Uint8Array;
}

/**
 * A frozen text encoder that runs outside tfjs (e.g. an ONNX model) and so answers
 * asynchronously. Training wants the synchronous `TextEncoder`: wrap one in a
 * `TextFeatureCache`, which runs it once per caption ahead of time and serves the stored
 * features.
 */
export interface AsyncTextEncoder {
  /** Stable identifier (weights, tokenizer, length): keys the feature cache. */
  readonly id: string;
  /** Width D of the token features. */
  readonly width: number;
  /** Tokens L per caption (every result is padded to L). */
  readonly maxTokens: number;
  encodeAsync(captions: string[]): Promise<EncodedTextArrays>;
  /** Releases native resources (an inference session), where there are any. */
  dispose?(): Promise<void>;
}
