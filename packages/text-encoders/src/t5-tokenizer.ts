import { ConfigError, DataError } from '@matryoshka-ts/core';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * T5 / FLAN-T5's SentencePiece unigram tokenizer, read from a LOCAL Hugging Face
 * `tokenizer.json` (model.type "Unigram"). It reproduces what HF `tokenizers` does for T5:
 *
 * 1. special tokens written in the text (`</s>`, `<pad>`, `<extra_id_0>`, …: the file's
 *    added_tokens) are cut out first and map straight to their ids;
 * 2. normalization: NFKC, control characters dropped, every whitespace run becomes one space,
 *    the ends are trimmed;
 * 3. pre-tokenization (WhitespaceSplit + Metaspace): each word gets "▁" in front;
 * 4. each word is segmented by Viterbi, maximising the sum of the pieces' log-probabilities. A
 *    character no piece covers becomes unk with score (lowest piece score − 10), and runs of
 *    unks fuse into one unk, as sentencepiece and HF do;
 * 5. `</s>` is appended (the file's post-processor; id 1 in T5).
 *
 * The approximation: T5's normalizer is sentencepiece's compiled `nmt_nfkc` character map. We
 * apply `String.prototype.normalize('NFKC')` plus its whitespace and control-character rules
 * instead of decoding the map. The two agree on ordinary text; they can differ on rare
 * characters where the compiled map deviates from Unicode NFKC (it was built from an older
 * Unicode version, and maps a few zero-width and format characters differently).
 */

export interface T5TokenizerOptions {
  /** Id of the unknown-piece token (tokenizer.json `model.unk_id`; 2 in T5). */
  unkId: number;
  /** End-of-sequence token appended to every row (default `</s>`). */
  eos?: string;
  /** Padding id (default: the id of `<pad>`, else 0). */
  padId?: number;
  /** Strings matched as whole tokens before normalization (default: unk, eos and `<pad>`). */
  specialTokens?: string[];
  /** Metaspace: "▁" before every word (`always`, T5), only the first, or `never`. */
  prependScheme?: 'always' | 'first' | 'never';
  /** Tokens per caption in `encodeBatch`, eos included (default 128). */
  maxLength?: number;
}

export interface T5Batch {
  /** [B, L] token ids, row-major, padded with the pad id. */
  ids: Int32Array;
  /** [B, L], 1 for text and eos, 0 for padding. */
  attentionMask: Int32Array;
  /** Tokens per row, eos included. */
  lengths: number[];
}

/** The Metaspace replacement for a space (U+2581). */
export const SPACE_PIECE = '\u2581';
/** sentencepiece's kUnkPenalty: an unknown character scores this far below the worst piece. */
const UNK_PENALTY = 10;
const DEFAULT_MAX_LENGTH = 128;
const MAX_CACHE = 50_000;

// Characters nmt_nfkc turns into a space: whitespace, the zero-width space, BOM, and a literal
// "▁" (Metaspace splits on it, so in the text it separates words like a space).
const SPACES = /[\s\u200b\ufeff\u2581]+/gu;
// Other control characters (C0, DEL, C1) are dropped.
/* biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
   (T5's normaliser drops them). */
const CONTROLS = /[\u0000-\u0008\u000e-\u001f\u007f-\u009f]/gu;

/** T5's text normalization (see the note above on NFKC): NFKC, controls out, spaces collapsed. */
export function t5Normalize(text: string): string {
  return text.normalize('NFKC').replace(CONTROLS, '').replace(SPACES, ' ').trim();
}

export class T5Tokenizer {
  /** Stable identifier (vocab size + hash of pieces, scores and settings): keys caches. */
  readonly id: string;
  readonly vocabSize: number;
  readonly maxLength: number;
  readonly unkId: number;
  readonly eosId: number;
  readonly padId: number;
  private readonly pieces: string[];
  private readonly scores: Float64Array;
  private readonly ids = new Map<string, number>();
  /** Longest piece in code points: bounds the Viterbi look-ahead. */
  private readonly maxPieceChars: number;
  private readonly unkScore: number;
  private readonly prependScheme: 'always' | 'first' | 'never';
  private readonly specialIds = new Map<string, number>();
  private readonly specialPattern: RegExp | undefined;
  private readonly cache = new Map<string, number[]>();

  /** `vocab`: the [piece, log-probability] pairs in id order, as in tokenizer.json. */
  constructor(vocab: Array<[string, number]>, options: T5TokenizerOptions) {
    this.pieces = vocab.map(([piece]) => piece);
    this.scores = Float64Array.from(vocab, ([piece, score]) => {
      if (typeof piece !== 'string' || !Number.isFinite(score)) {
        throw new DataError(`T5Tokenizer: bad vocab entry ${JSON.stringify([piece, score])}`);
      }
      return score;
    });
    // A duplicated piece keeps its first id, as HF's lookup table does.
    this.pieces.forEach((piece, id) => this.ids.has(piece) || this.ids.set(piece, id));
    this.vocabSize = vocab.length;
    // Loops, not Math.max(...xs): spreading a 250k-piece vocabulary overflows the call stack.
    let longest = 1;
    for (const piece of this.pieces) longest = Math.max(longest, Array.from(piece).length);
    this.maxPieceChars = longest;
    this.unkScore = this.scores.reduce((min, s) => Math.min(min, s), Infinity) - UNK_PENALTY;

    if (!Number.isInteger(options.unkId) || options.unkId < 0 || options.unkId >= vocab.length) {
      throw new DataError(`T5Tokenizer: unk id ${options.unkId} is not in the vocabulary (size ${vocab.length})`);
    }
    this.unkId = options.unkId;
    const eos = options.eos ?? '</s>';
    const eosId = this.ids.get(eos);
    if (eosId === undefined) {
      throw new DataError(`T5Tokenizer: eos token ${JSON.stringify(eos)} is not in the vocabulary`);
    }
    this.eosId = eosId;
    this.padId = options.padId ?? this.ids.get('<pad>') ?? 0;
    this.prependScheme = options.prependScheme ?? 'always';
    this.maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;

    const specials = options.specialTokens ?? [this.pieces[this.unkId], eos, '<pad>'];
    for (const token of specials) {
      const id = this.ids.get(token);
      if (id !== undefined && token !== '') this.specialIds.set(token, id);
    }
    if (this.specialIds.size) {
      // Longest first, so "<extra_id_10>" is not read as a shorter token plus text.
      const alternatives = [...this.specialIds.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
      this.specialPattern = new RegExp(`(${alternatives.join('|')})`, 'u');
    }
    this.id = `t5-unigram-v${this.vocabSize}-${this.fingerprint()}`;
  }

  /** Reads `tokenizer.json` from a local model directory. */
  static fromDirectory(dir: string, options: { maxLength?: number } = {}): T5Tokenizer {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new DataError(`T5Tokenizer: model directory not found: ${dir}`);
    }
    const path = join(dir, 'tokenizer.json');
    if (!existsSync(path)) {
      throw new DataError(`T5Tokenizer: ${dir} has no tokenizer.json (a Hugging Face fast-tokenizer file)`);
    }
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new DataError(`T5Tokenizer: cannot read ${path}: ${(err as Error).message}`);
    }
    return T5Tokenizer.fromJson(json, path, options);
  }

  /** Builds the tokenizer from a parsed tokenizer.json (`where` names it in errors). */
  static fromJson(json: unknown, where = 'tokenizer.json', options: { maxLength?: number } = {}): T5Tokenizer {
    const file = (json ?? {}) as TokenizerJson;
    const model = file.model;
    if (model?.type !== 'Unigram') {
      throw new DataError(
        `T5Tokenizer: ${where} has model.type ${JSON.stringify(model?.type)}, not "Unigram" ` +
          "(not a SentencePiece unigram tokenizer such as T5's)",
      );
    }
    if (!Array.isArray(model.vocab)) {
      throw new DataError(`T5Tokenizer: ${where} has no model.vocab list of [piece, score] pairs`);
    }
    if (model.byte_fallback) {
      throw new DataError(`T5Tokenizer: ${where} uses byte_fallback, which this tokenizer does not implement`);
    }
    if (typeof model.unk_id !== 'number') throw new DataError(`T5Tokenizer: ${where} has no model.unk_id`);
    return new T5Tokenizer(model.vocab as Array<[string, number]>, {
      unkId: model.unk_id,
      eos: templateEos(file.post_processor),
      padId: file.padding?.pad_id,
      specialTokens: file.added_tokens?.map((t) => t.content),
      prependScheme: metaspaceScheme(file.pre_tokenizer),
      maxLength: options.maxLength,
    });
  }

  /** The piece strings of a text (no eos). */
  tokenize(text: string): string[] {
    return this.encode(text).map((id) => this.pieces[id]);
  }

  /** Token ids of a text, without the eos. */
  encode(text: string): number[] {
    const out: number[] = [];
    let first = true;
    for (const part of this.specialPattern ? text.split(this.specialPattern) : [text]) {
      const special = this.specialIds.get(part);
      if (special !== undefined) {
        out.push(special);
        continue;
      }
      for (const word of t5Normalize(part).split(' ')) {
        if (word === '') continue;
        const prefix = this.prependScheme === 'always' || (this.prependScheme === 'first' && first) ? SPACE_PIECE : '';
        out.push(...this.encodeWord(prefix + word));
        first = false;
      }
    }
    return out;
  }

  /** Rows of ids with eos appended, truncated to keep eos last, padded with the pad id. */
  encodeBatch(texts: string[], maxLength = this.maxLength): T5Batch {
    const L = maxLength;
    if (!Number.isInteger(L) || L < 1) {
      throw new ConfigError(`T5Tokenizer: maxLength must be an integer ≥ 1 (room for eos), got ${L}`);
    }
    const ids = new Int32Array(texts.length * L).fill(this.padId);
    const attentionMask = new Int32Array(texts.length * L);
    const lengths = texts.map((text, b) => {
      const row = [...this.encode(text).slice(0, L - 1), this.eosId];
      ids.set(row, b * L);
      attentionMask.fill(1, b * L, b * L + row.length);
      return row.length;
    });
    return { ids, attentionMask, lengths };
  }

  /** Text of ids: pieces joined, "▁" back to spaces (the leading one dropped, as HF's decoder). */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    const special = new Set([this.eosId, this.padId, ...this.specialIds.values()]);
    const kept = Array.from(ids).filter((id) => !(options.skipSpecialTokens && special.has(id)));
    return kept
      .map((id) => {
        const piece = this.pieces[id];
        if (piece === undefined) throw new RangeError(`T5Tokenizer: token id ${id} is not in the vocabulary`);
        return piece;
      })
      .join('')
      .replaceAll(SPACE_PIECE, ' ')
      .replace(/^ /, '');
  }

  /** Viterbi over one pre-token, cached since captions repeat words. */
  private encodeWord(word: string): number[] {
    let ids = this.cache.get(word);
    if (ids) return ids;
    ids = this.viterbi(Array.from(word));
    if (this.cache.size >= MAX_CACHE) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  /**
   * Best segmentation of `chars` (code points). best[e] is the top score of a path covering
   * chars[0, e). Ties keep the first path found (starts left to right, shorter pieces first),
   * as HF's encode_optimized does, so equal scores segment identically.
   */
  private viterbi(chars: string[]): number[] {
    const n = chars.length;
    const best = new Float64Array(n + 1);
    const from = new Int32Array(n + 1);
    const token = new Int32Array(n + 1).fill(-1);
    const offer = (start: number, end: number, id: number, score: number) => {
      const candidate = best[start] + score;
      if (token[end] === -1 || candidate > best[end]) {
        best[end] = candidate;
        from[end] = start;
        token[end] = id;
      }
    };
    for (let start = 0; start < n; start++) {
      let piece = '';
      let hasSingle = false;
      for (let end = start + 1; end <= Math.min(n, start + this.maxPieceChars); end++) {
        piece += chars[end - 1];
        const id = this.ids.get(piece);
        if (id === undefined) continue;
        offer(start, end, id, this.scores[id]);
        if (end === start + 1) hasSingle = true;
      }
      // Every position stays reachable: a character no piece covers is an unk.
      if (!hasSingle) offer(start, start + 1, this.unkId, this.unkScore);
    }
    const out: number[] = [];
    for (let end = n; end > 0; end = from[end]) {
      // Consecutive unks fuse into one (sentencepiece and HF's fuse_unk).
      if (token[end] === this.unkId && out.at(-1) === this.unkId) continue;
      out.push(token[end]);
    }
    return out.reverse();
  }

  /** 12 hex digits of SHA-256 over pieces, scores and every setting that changes the ids. */
  private fingerprint(): string {
    const hash = createHash('sha256');
    this.pieces.forEach((piece, id) => hash.update(`${piece}\u0000${this.scores[id]}\u0001`));
    const specials = [...this.specialIds].map(([t, id]) => `${t}=${id}`).join('\u0000');
    hash.update(`\u0002nfkc-v1,${this.unkId},${this.eosId},${this.padId},${this.prependScheme}\u0002${specials}`);
    return hash.digest('hex').slice(0, 12);
  }
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json pieces

interface TokenizerJson {
  model?: { type?: string; vocab?: unknown; unk_id?: number | null; byte_fallback?: boolean };
  added_tokens?: Array<{ id: number; content: string }>;
  pre_tokenizer?: unknown;
  post_processor?: unknown;
  padding?: { pad_id?: number } | null;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The Metaspace pre-tokenizer's prepend scheme, found directly or inside a Sequence. */
function metaspaceScheme(pre: unknown): T5TokenizerOptions['prependScheme'] {
  const node = pre as {
    type?: string;
    pretokenizers?: unknown[];
    prepend_scheme?: string;
    add_prefix_space?: boolean;
    replacement?: string;
  } | null;
  if (!node) return undefined;
  if (node.type === 'Sequence') {
    for (const inner of node.pretokenizers ?? []) {
      const scheme = metaspaceScheme(inner);
      if (scheme) return scheme;
    }
    return undefined;
  }
  if (node.type !== 'Metaspace') return undefined;
  if (node.replacement !== undefined && node.replacement !== SPACE_PIECE) {
    throw new DataError(`T5Tokenizer: Metaspace replacement ${JSON.stringify(node.replacement)} is not "▁"`);
  }
  if (node.prepend_scheme === 'always' || node.prepend_scheme === 'first' || node.prepend_scheme === 'never')
    return node.prepend_scheme;
  return node.add_prefix_space === false ? 'never' : 'always';
}

/** The special token a TemplateProcessing post-processor appends to a single sequence. */
function templateEos(post: unknown): string | undefined {
  const single = (post as { type?: string; single?: unknown[] } | null)?.single;
  if (!Array.isArray(single)) return undefined;
  const specials = single.map((item) => (item as { SpecialToken?: { id?: string } }).SpecialToken?.id);
  if (specials[0] !== undefined) {
    throw new DataError(
      'T5Tokenizer: the post-processor puts a special token before the text; only an appended eos (T5) is supported',
    );
  }
  return specials.filter((s): s is string => s !== undefined).at(-1);
}
