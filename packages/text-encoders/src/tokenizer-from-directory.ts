import { DataError } from '@matryoshka-ts/core';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ClipTokenizer } from './clip-tokenizer.js';
import { T5Tokenizer } from './t5-tokenizer.js';

/** What an ONNX text encoder needs of a tokenizer: padded rows of ids and their mask. */
export interface BatchTokenizer {
  readonly id: string;
  encodeBatch(texts: string[], length: number): { ids: Int32Array; attentionMask: Int32Array; lengths: number[] };
}

/** The tokenizer found, and the family's usual tokens per caption (T5 128, CLIP its context length, 77). */
export type DirectoryTokenizer =
  | { kind: 't5'; tokenizer: T5Tokenizer; defaultMaxTokens: number }
  | { kind: 'clip'; tokenizer: ClipTokenizer; defaultMaxTokens: number };

const T5_DEFAULT_TOKENS = 128;

/**
 * The tokenizer of a local model directory, by the files present: a `tokenizer.json` whose
 * model is "Unigram" → T5; "BPE", or `vocab.json` + `merges.txt` → CLIP.
 */
export function tokenizerFromDirectory(dir: string): DirectoryTokenizer {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new DataError(`model directory not found: ${dir}`);
  const tokenizerJson = join(dir, 'tokenizer.json');
  if (existsSync(tokenizerJson)) {
    let json: { model?: { type?: unknown } };
    try {
      json = JSON.parse(readFileSync(tokenizerJson, 'utf8'));
    } catch (err) {
      throw new DataError(`cannot read ${tokenizerJson}: ${(err as Error).message}`);
    }
    const type = json?.model?.type;
    if (type === 'Unigram') {
      return { kind: 't5', tokenizer: T5Tokenizer.fromJson(json, tokenizerJson), defaultMaxTokens: T5_DEFAULT_TOKENS };
    }
    if (type !== 'BPE') {
      throw new DataError(
        `${tokenizerJson} has model.type ${JSON.stringify(type)}; supported: "Unigram" (T5) and "BPE" (CLIP)`,
      );
    }
  } else if (!existsSync(join(dir, 'vocab.json')) || !existsSync(join(dir, 'merges.txt'))) {
    throw new DataError(
      `${dir} has no tokenizer: expected tokenizer.json (T5 unigram or CLIP BPE) or vocab.json + merges.txt (CLIP)`,
    );
  }
  const clip = ClipTokenizer.fromDirectory(dir);
  return { kind: 'clip', tokenizer: clip, defaultMaxTokens: clip.contextLength };
}
