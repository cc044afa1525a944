import { ConfigError, DataError } from '@matryoshka-ts/core';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * CLIP's byte-level BPE tokenizer: a port of OpenAI CLIP's `simple_tokenizer.py` (the logic HF
 * `CLIPTokenizer` reproduces), reading the vocabulary from a local model directory only.
 *
 * Differences from the Python original, all in text cleanup before tokenization:
 * - `ftfy.fix_text` is skipped (ftfy has no JS port here). So mojibake is not repaired ("cafÃ©"
 *   stays as is), curly quotes are not straightened ("it’s" does not split off "’s" the way
 *   "it's" does), text is not NFC-normalised (decomposed accents stay two code points),
 *   ligatures and full-width forms are not folded, and control characters are kept. Captions that
 *   are plain NFC text with straight quotes, which covers nearly all, tokenize identically.
 * - `html.unescape` is reproduced for numeric references (`&#39;`, `&#x27;`, with Python's
 *   replacements for invalid code points) and a table of common named entities; other named
 *   entities and legacy names without `;` are left as text.
 */

export interface ClipTokenizerOptions {
  /** Start-of-text token (default `<|startoftext|>`). */
  bos?: string;
  /** End-of-text token (default `<|endoftext|>`). */
  eos?: string;
  /** Padding token (default: the eos token, as in openai/clip-vit-*). */
  pad?: string;
  /** Token used for a BPE symbol missing from the vocabulary (default `<|endoftext|>`, as HF). */
  unk?: string;
  /** Tokens per caption in `encodeBatch`, bos and eos included (default 77). */
  contextLength?: number;
}

export interface ClipBatch {
  /** [B, L] token ids, row-major. */
  ids: Int32Array;
  /** [B, L], 1 for bos, text and eos; 0 for padding. */
  attentionMask: Int32Array;
  /** Tokens per row, bos and eos included. */
  lengths: number[];
  /** Position of each row's eos token: what CLIP's text tower pools at. */
  eosIndex: number[];
}

const DEFAULT_BOS = '<|startoftext|>';
const DEFAULT_EOS = '<|endoftext|>';
const END_OF_WORD = '</w>';
const DEFAULT_CONTEXT = 77;
const MAX_CACHE = 50_000;

// ---------------------------------------------------------------------------------------------
// Byte ↔ symbol table

/**
 * GPT-2's `bytes_to_unicode`: each byte gets a printable code point (printable Latin-1 bytes map
 * to themselves, the rest to U+0100 onwards), so BPE never sees whitespace or control characters.
 */
export function bytesToUnicode(): string[] {
  const table = new Array<string>(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : 256 + extra++);
  return table;
}

const BYTE_TO_SYMBOL = bytesToUnicode();
const SYMBOL_TO_BYTE = new Map(BYTE_TO_SYMBOL.map((s, b) => [s, b]));
const utf8 = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Text cleanup (basic_clean + whitespace_clean, minus ftfy)

// Python `regex`'s `\s` (Unicode White_Space). JS `\s` differs: it adds U+FEFF and lacks U+0085.
const WS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_RUN = new RegExp(`[${WS}]+`, 'gu');
// Python's `str.strip()` also strips U+001C..U+001F, which `\s` does not match.
const STRIP_EDGES = new RegExp(`^[${WS}\\x1c-\\x1f]+|[${WS}\\x1c-\\x1f]+$`, 'gu');

/** CLIP's pre-tokenization pattern (`re.IGNORECASE`), with `\s` spelled as Python's. */
const TOKEN_PATTERN = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${WS}\\p{L}\\p{N}]+`,
  'giu',
);

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
  copy: '©',
  reg: '®',
  trade: '™',
  hellip: '…',
  mdash: '—',
  ndash: '–',
  middot: '·',
  bull: '•',
  lsquo: '‘',
  rsquo: '’',
  ldquo: '“',
  rdquo: '”',
  laquo: '«',
  raquo: '»',
  deg: '°',
  times: '×',
};

// Python's html._invalid_charrefs for U+0080..U+009F: read as windows-1252, as browsers do.
const CP1252_C1 = '€\x81‚ƒ„…†‡ˆ‰Š‹Œ\x8dŽ\x8f\x90‘’“”•–—˜™š›œ\x9džŸ';

/** Python's `html.unescape` for a numeric reference: browsers' replacements for bad code points. */
function numericEntity(num: number): string {
  if (num === 0) return '\ufffd';
  if (num === 0x0d) return '\r';
  if (num >= 0x80 && num <= 0x9f) return CP1252_C1[num - 0x80];
  if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
  const dropped =
    (num >= 0x1 && num <= 0x8) ||
    num === 0xb ||
    (num >= 0xe && num <= 0x1f) ||
    num === 0x7f ||
    (num >= 0xfdd0 && num <= 0xfdef) ||
    (num & 0xfffe) === 0xfffe;
  return dropped ? '' : String.fromCodePoint(num);
}

/** One pass of `html.unescape` (numeric refs and the common named entities above). */
export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(
    /&(?:#([0-9]+);?|#[xX]([0-9a-fA-F]+);?|([A-Za-z][A-Za-z0-9]{0,31});)/g,
    (whole, dec, hex, name) => {
      if (dec !== undefined) return numericEntity(Number.parseInt(dec, 10));
      if (hex !== undefined) return numericEntity(Number.parseInt(hex, 16));
      return NAMED_ENTITIES[name] ?? whole;
    },
  );
}

/** CLIP's text cleanup: unescape HTML twice (as CLIP does), collapse whitespace, trim, lower-case. */
export function clipClean(text: string): string {
  const unescaped = htmlUnescape(htmlUnescape(text)).replace(STRIP_EDGES, '');
  return unescaped.replace(WS_RUN, ' ').replace(STRIP_EDGES, '').toLowerCase();
}

// ---------------------------------------------------------------------------------------------
// BPE

/** Key of a merge pair; NUL never occurs in byte-level symbols (byte 0 maps to U+0100). */
const pairKey = (a: string, b: string) => `${a}\u0000${b}`;

/** Replace every non-overlapping (first, second) pair, left to right, by their concatenation. */
function mergePair(word: string[], first: string, second: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < word.length; i++) {
    if (word[i] === first && i + 1 < word.length && word[i + 1] === second) {
      out.push(first + second);
      i++;
    } else {
      out.push(word[i]);
    }
  }
  return out;
}

/**
 * BPE of one byte-encoded pre-token: the last symbol carries `</w>`; the adjacent pair with the
 * lowest merge rank is merged everywhere, until no adjacent pair has a rank.
 */
function bpe(token: string, ranks: Map<string, number>): string[] {
  const chars = Array.from(token);
  let word = [...chars.slice(0, -1), chars[chars.length - 1] + END_OF_WORD];
  while (word.length > 1) {
    let best: [string, string] | undefined;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < word.length; i++) {
      const rank = ranks.get(pairKey(word[i], word[i + 1]));
      if (rank !== undefined && rank < bestRank) {
        bestRank = rank;
        best = [word[i], word[i + 1]];
      }
    }
    if (!best) break;
    word = mergePair(word, best[0], best[1]);
  }
  return word;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

export class ClipTokenizer {
  /** Stable identifier (vocab size + hash of vocab, merges and special tokens): keys caches. */
  readonly id: string;
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  private readonly unkId: number | undefined;
  private readonly encoder: Map<string, number>;
  private readonly decoder = new Map<number, string>();
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  constructor(
    vocab: Map<string, number> | Record<string, number>,
    merges: Array<[string, string]>,
    options: ClipTokenizerOptions = {},
  ) {
    this.encoder = vocab instanceof Map ? new Map(vocab) : new Map(Object.entries(vocab));
    for (const [token, id] of this.encoder) {
      if (!Number.isInteger(id) || id < 0) {
        throw new DataError(`ClipTokenizer: vocab id of ${JSON.stringify(token)} is not a non-negative integer: ${id}`);
      }
      this.decoder.set(id, token);
    }
    // Later duplicates win, as in Python's dict(zip(merges, range(len(merges)))).
    merges.forEach(([a, b], rank) => this.ranks.set(pairKey(a, b), rank));
    this.vocabSize = this.encoder.size;

    const bos = options.bos ?? DEFAULT_BOS;
    const eos = options.eos ?? DEFAULT_EOS;
    this.bosId = this.requireId(bos, 'bos');
    this.eosId = this.requireId(eos, 'eos');
    this.padId = this.requireId(options.pad ?? eos, 'pad');
    this.unkId = this.encoder.get(options.unk ?? DEFAULT_EOS);
    this.contextLength = options.contextLength ?? DEFAULT_CONTEXT;
    if (!Number.isInteger(this.contextLength) || this.contextLength < 2) {
      throw new ConfigError(
        `ClipTokenizer: contextLength must be an integer ≥ 2 (bos + eos), got ${this.contextLength}`,
      );
    }
    this.id = `clip-bpe-v${this.vocabSize}-${this.fingerprint(merges)}`;
  }

  /**
   * Loads `vocab.json` + `merges.txt`, or else `tokenizer.json`, from a local directory, with the
   * special tokens (and context length) of `tokenizer_config.json` / `special_tokens_map.json`
   * when present. `options` override what the files say. Never downloads anything.
   */
  static fromDirectory(dir: string, options: ClipTokenizerOptions = {}): ClipTokenizer {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new DataError(`ClipTokenizer: model directory not found: ${dir}`);
    }
    const { vocab, merges } = readVocabAndMerges(dir);
    return new ClipTokenizer(vocab, merges, { ...readSpecialTokens(dir), ...definedOnly(options) });
  }

  /** BPE symbols of a text (after CLIP's cleanup), without bos/eos. */
  tokenize(text: string): string[] {
    return this.encode(text).map((id) => this.decoder.get(id) as string);
  }

  /** Token ids of a text, without bos/eos. */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const match of clipClean(text).matchAll(TOKEN_PATTERN)) ids.push(...this.encodePreToken(match[0]));
    return ids;
  }

  /**
   * `[bos, ...ids, eos]` per text, truncated to `contextLength` with eos kept last (HF's
   * `truncation=True`), padded with the pad id; rows are packed into [B, L] arrays.
   */
  encodeBatch(texts: string[], contextLength = this.contextLength): ClipBatch {
    const L = contextLength;
    if (!Number.isInteger(L) || L < 2) {
      throw new ConfigError(`ClipTokenizer: contextLength must be an integer ≥ 2 (bos + eos), got ${L}`);
    }
    const ids = new Int32Array(texts.length * L).fill(this.padId);
    const attentionMask = new Int32Array(texts.length * L);
    const lengths: number[] = [];
    const eosIndex: number[] = [];
    texts.forEach((text, b) => {
      const row = [this.bosId, ...this.encode(text).slice(0, L - 2), this.eosId];
      ids.set(row, b * L);
      attentionMask.fill(1, b * L, b * L + row.length);
      lengths.push(row.length);
      eosIndex.push(row.length - 1);
    });
    return { ids, attentionMask, lengths, eosIndex };
  }

  /**
   * Text of token ids: symbols back to bytes, UTF-8 decoded (bad sequences become U+FFFD, like
   * Python's errors="replace"), `</w>` to a space, trimmed as HF does.
   */
  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const special = new Set([this.bosId, this.eosId, this.padId]);
    const kept = options.skipSpecialTokens ? ids.filter((id) => !special.has(id)) : ids;
    const text = kept.map((id) => this.symbolOf(id)).join('');
    const bytes = Uint8Array.from(Array.from(text), (c) => this.byteOf(c));
    return new TextDecoder('utf-8').decode(bytes).replaceAll(END_OF_WORD, ' ').trim();
  }

  /** Ids of one pre-token (a regex match), cached since captions repeat words. */
  private encodePreToken(token: string): number[] {
    let ids = this.cache.get(token);
    if (ids) return ids;
    if (token === DEFAULT_BOS || token === DEFAULT_EOS) {
      // CLIP seeds its BPE cache with these: written in the text, they are the special tokens.
      ids = [this.idOf(token)];
    } else {
      const byteSymbols = Array.from(utf8.encode(token), (b) => BYTE_TO_SYMBOL[b]).join('');
      ids = bpe(byteSymbols, this.ranks).map((s) => this.idOf(s));
    }
    if (this.cache.size >= MAX_CACHE) this.cache.clear();
    this.cache.set(token, ids);
    return ids;
  }

  private idOf(symbol: string): number {
    const id = this.encoder.get(symbol) ?? this.unkId;
    if (id === undefined) {
      throw new DataError(
        `ClipTokenizer: symbol ${JSON.stringify(symbol)} is not in the vocabulary and there is no unk token`,
      );
    }
    return id;
  }

  private symbolOf(id: number): string {
    const symbol = this.decoder.get(id);
    if (symbol === undefined) throw new RangeError(`ClipTokenizer: token id ${id} is not in the vocabulary`);
    return symbol;
  }

  private byteOf(char: string): number {
    const b = SYMBOL_TO_BYTE.get(char);
    if (b === undefined) throw new Error(`ClipTokenizer: ${JSON.stringify(char)} is not a byte-level symbol`);
    return b;
  }

  private requireId(token: string, role: string): number {
    const id = this.encoder.get(token);
    if (id === undefined) {
      throw new DataError(`ClipTokenizer: ${role} token ${JSON.stringify(token)} is not in the vocabulary`);
    }
    return id;
  }

  /** 12 hex digits of SHA-256 over the vocabulary (by id), the merges and the special ids. */
  private fingerprint(merges: Array<[string, string]>): string {
    const hash = createHash('sha256');
    const byId = [...this.encoder].sort((x, y) => x[1] - y[1] || (x[0] < y[0] ? -1 : 1));
    for (const [token, id] of byId) hash.update(`${id}\u0000${token}\u0001`);
    hash.update('\u0002merges\u0002');
    for (const [a, b] of merges) hash.update(`${a}\u0000${b}\u0001`);
    hash.update(`\u0002${this.bosId},${this.eosId},${this.padId},${this.unkId ?? -1}`);
    return hash.digest('hex').slice(0, 12);
  }
}

// ---------------------------------------------------------------------------------------------
// Loading from a model directory

interface VocabAndMerges {
  vocab: Record<string, number>;
  merges: Array<[string, string]>;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new DataError(`ClipTokenizer: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Prefers vocab.json + merges.txt (what CLIPTokenizer reads), else tokenizer.json. */
function readVocabAndMerges(dir: string): VocabAndMerges {
  const vocabPath = join(dir, 'vocab.json');
  const mergesPath = join(dir, 'merges.txt');
  const tokenizerPath = join(dir, 'tokenizer.json');
  const hasVocab = existsSync(vocabPath);
  const hasMerges = existsSync(mergesPath);
  if (hasVocab && hasMerges) {
    return {
      vocab: asVocab(readJson(vocabPath), vocabPath),
      merges: parseMergesTxt(readFileSync(mergesPath, 'utf8'), mergesPath),
    };
  }
  if (existsSync(tokenizerPath)) return parseTokenizerJson(readJson(tokenizerPath), tokenizerPath);
  const missing = [!hasVocab && 'vocab.json', !hasMerges && 'merges.txt', 'tokenizer.json'].filter(Boolean).join(', ');
  throw new DataError(`ClipTokenizer: ${dir} needs vocab.json + merges.txt or tokenizer.json; missing: ${missing}`);
}

/** merges.txt: one "a b" pair a line; an optional `#version` header and blank lines are skipped. */
export function parseMergesTxt(text: string, source = 'merges.txt'): Array<[string, string]> {
  const lines = text.split(/\r?\n/);
  const merges: Array<[string, string]> = [];
  lines.forEach((line, i) => {
    if (line.trim() === '' || (i === 0 && line.startsWith('#version'))) return;
    merges.push(asPair(line.trim().split(/ +/), `${source} line ${i + 1}`));
  });
  return merges;
}

function asPair(parts: unknown, where: string): [string, string] {
  if (!Array.isArray(parts) || parts.length !== 2 || parts.some((p) => typeof p !== 'string' || p === '')) {
    throw new DataError(`ClipTokenizer: ${where}: a merge must be two symbols, got ${JSON.stringify(parts)}`);
  }
  return [parts[0], parts[1]];
}

function asVocab(value: unknown, where: string): Record<string, number> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DataError(`ClipTokenizer: ${where}: the vocabulary must be an object of token → id`);
  }
  return value as Record<string, number>;
}

/** tokenizer.json: model.vocab, model.merges ("a b" strings or ["a", "b"] pairs), added tokens. */
function parseTokenizerJson(json: unknown, where: string): VocabAndMerges {
  const model = (json as { model?: Record<string, unknown> } | null)?.model;
  if (!model || model.vocab === undefined || !Array.isArray(model.merges)) {
    throw new DataError(`ClipTokenizer: ${where} has no model.vocab and model.merges (not a BPE tokenizer?)`);
  }
  const suffix = model.end_of_word_suffix;
  if (suffix !== undefined && suffix !== null && suffix !== END_OF_WORD) {
    throw new DataError(
      `ClipTokenizer: ${where} uses end_of_word_suffix ${JSON.stringify(suffix)}, not "</w>": not a CLIP tokenizer`,
    );
  }
  const vocab = { ...asVocab(model.vocab, `${where} model.vocab`) };
  // Special tokens may live only in added_tokens.
  const added = (json as { added_tokens?: Array<{ id: number; content: string }> }).added_tokens ?? [];
  for (const { id, content } of added) if (!(content in vocab)) vocab[content] = id;
  const merges = model.merges.map((m: unknown, i: number) =>
    asPair(typeof m === 'string' ? m.split(' ') : m, `${where} model.merges[${i}]`),
  );
  return { vocab, merges };
}

/** A special token as HF writes it: a string or an AddedToken object `{ content }`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  const content = (value as { content?: unknown } | null)?.content;
  return typeof content === 'string' ? content : undefined;
}

/** bos/eos/pad/unk from tokenizer_config.json, falling back to special_tokens_map.json. */
function readSpecialTokens(dir: string): ClipTokenizerOptions {
  const read = (name: string) => {
    const path = join(dir, name);
    return existsSync(path) ? ((readJson(path) as Record<string, unknown>) ?? {}) : {};
  };
  const config = read('tokenizer_config.json');
  const map = read('special_tokens_map.json');
  const pick = (key: string) => tokenContent(config[key]) ?? tokenContent(map[key]);
  // model_max_length is 77 for CLIP; HF writes a huge sentinel when it is unset.
  const maxLength = config.model_max_length;
  const contextLength =
    Number.isInteger(maxLength) && (maxLength as number) >= 2 && (maxLength as number) <= 65536
      ? (maxLength as number)
      : undefined;
  return definedOnly({
    bos: pick('bos_token'),
    eos: pick('eos_token'),
    pad: pick('pad_token'),
    unk: pick('unk_token'),
    contextLength,
  });
}

/** Drops undefined fields so that spreading does not erase defaults. */
function definedOnly<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
