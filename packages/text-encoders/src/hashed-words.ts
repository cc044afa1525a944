import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@matryoshka-ts/core';
import type { EncodedText, TextEncoder } from './text-encoder.js';

export interface HashedWordOptions {
  /** Feature width D (default 64). */
  width?: number;
  /** Tokens per caption; longer captions are truncated (default 16). */
  maxTokens?: number;
}

/** FNV-1a hash of a string, 32 bits. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Lower-case words and numbers; punctuation splits words. */
export function words(caption: string): string[] {
  return (
    caption
      .toLowerCase()
      .normalize('NFKD')
      .match(/[a-z0-9]+/g) ?? []
  );
}

/**
 * An offline frozen encoder for the bundled data and for tests: each word maps to a fixed
 * pseudo-random unit vector (seeded by its hash, so unseen words work too), plus a small
 * sinusoidal position code so word order is visible. Nothing is downloaded or trained: it
 * stands in for a large language model where none is available, with the same interface.
 */
export class HashedWordEncoder implements TextEncoder {
  readonly id: string;
  readonly width: number;
  readonly maxTokens: number;
  private readonly cache = new Map<string, Float32Array>();

  constructor(options: HashedWordOptions = {}) {
    this.width = options.width ?? 64;
    this.maxTokens = options.maxTokens ?? 16;
    this.id = `hashed-words-v1-d${this.width}-l${this.maxTokens}`;
  }

  /** The feature vector of one word at position `pos`: unit-norm word vector + 0.1 × position code. */
  private vector(word: string, pos: number): Float32Array {
    let base = this.cache.get(word);
    if (!base) {
      const rng = new Rng(fnv1a(word));
      base = rng.normals(this.width);
      const norm = Math.hypot(...base);
      for (let i = 0; i < base.length; i++) base[i] /= norm;
      this.cache.set(word, base);
    }
    const out = Float32Array.from(base);
    for (let i = 0; i < this.width; i += 2) {
      const f = Math.exp((-Math.log(100) * i) / this.width);
      out[i] += 0.1 * Math.sin(pos * f);
      if (i + 1 < this.width) out[i + 1] += 0.1 * Math.cos(pos * f);
    }
    return out;
  }

  encode(captions: string[]): EncodedText {
    const B = captions.length;
    const L = this.maxTokens;
    const D = this.width;
    const tokens = new Float32Array(B * L * D);
    const mask = new Float32Array(B * L);
    captions.forEach((caption, b) => {
      // An empty caption (the null condition for guidance) keeps one all-zero token, so pooling is defined.
      const list = words(caption).slice(0, L);
      if (list.length === 0) {
        mask[b * L] = 1;
        return;
      }
      list.forEach((word, t) => {
        tokens.set(this.vector(word, t), (b * L + t) * D);
        mask[b * L + t] = 1;
      });
    });
    return { tokens: tf.tensor3d(tokens, [B, L, D]), mask: tf.tensor2d(mask, [B, L]) };
  }
}
