import * as tf from '@tensorflow/tfjs-core';
import type { Conditioning, Rng } from '@matryoshka-ts/core';
import type { TextEncoder } from '@matryoshka-ts/text-encoders';

/** What a batch is conditioned on: captions through a frozen encoder, class labels, or nothing. */
export type Conditioner =
  /** `prepare` (frozen ONNX encoders) encodes captions into the encoder's cache before they are used. */
  | { kind: 'text'; encoder: TextEncoder; prepare?: (captions: Iterable<string>) => Promise<void> }
  | { kind: 'labels'; numClasses: number }
  | { kind: 'none' };

/** The null condition of guidance: the empty caption, or label id `numClasses`. */
export function nullCondition(c: Conditioner): { caption: string; label: number } {
  return { caption: '', label: c.kind === 'labels' ? c.numClasses : 0 };
}

/**
 * The model's conditioning inputs for captions/labels; with `dropout` > 0 each sample is
 * replaced by the null condition with that probability (drawn from `rng`), so the model also
 * learns the unconditional prediction that classifier-free guidance needs.
 */
export function conditionBatch(
  c: Conditioner,
  captions: string[],
  labels: number[],
  dropout = 0,
  rng?: Rng,
): Conditioning {
  const drop = captions.map(() => (dropout > 0 && rng ? rng.uniform() < dropout : false));
  if (c.kind === 'text') {
    const { tokens, mask } = c.encoder.encode(captions.map((cap, i) => (drop[i] ? '' : cap)));
    return { tokens, mask };
  }
  if (c.kind === 'labels')
    return {
      labels: tf.tensor1d(
        labels.map((l, i) => (drop[i] ? c.numClasses : l)),
        'int32',
      ),
    };
  return {};
}

/** Concatenates two conditioning inputs along the batch ([a; b]), for guidance's doubled batch. */
export function concatConditioning(a: Conditioning, b: Conditioning): Conditioning {
  const cat = <T extends tf.Tensor>(x?: T, y?: T) => (x && y ? (tf.concat([x, y], 0) as T) : undefined);
  return { tokens: cat(a.tokens, b.tokens), mask: cat(a.mask, b.mask), labels: cat(a.labels, b.labels) };
}
