import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, DataError } from '@matryoshka-ts/core';
import { findPython, seeded } from '@matryoshka-ts/test-utils';
import { ClipTokenizer, bytesToUnicode, clipClean, htmlUnescape, parseMergesTxt } from './clip-tokenizer.js';

// A tiny CLIP vocabulary built the way simple_tokenizer.py builds the real one: the 256 byte
// symbols in code-point order, their `</w>` variants, one entry per merge, then the specials.
// So single characters get the same ids as in the real CLIP vocabulary ('!' = 0, 'a</w>' = 320).
const BYTE_SYMBOLS = [...bytesToUnicode()].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));
const MERGES: Array<[string, string]> = [
  ['p', 'h'], //          0 → ph        512
  ['o', 't'], //          1 → ot        513
  ['a', 't</w>'], //      2 → at</w>    514
  ['o', 'f</w>'], //      3 → of</w>    515
  ['ot', 'o</w>'], //     4 → oto</w>   516
  ['c', 'at</w>'], //     5 → cat</w>   517
  ['ph', 'oto</w>'], //   6 → photo</w> 518
  ['c', 'a'], //          7 → ca        519
  ['i', 't</w>'], //      8 → it</w>    520
  ["'", 's</w>'], //      9 → 's</w>    521
  ['t', 'h'], //         10 → th        522
  ['th', 'e</w>'], //    11 → the</w>   523
  ['d', 'o'], //         12 → do        524
  ['do', 'g</w>'], //    13 → dog</w>   525
  ['Ã', '©</w>'], //     14 → Ã©</w>    526  (é is C3 A9 in UTF-8)
];
const BOS = 527;
const EOS = 528;

function buildVocab(merges: Array<[string, string]>): Record<string, number> {
  const tokens = [...BYTE_SYMBOLS, ...BYTE_SYMBOLS.map((s) => `${s}</w>`), ...merges.map(([a, b]) => a + b)];
  tokens.push('<|startoftext|>', '<|endoftext|>');
  return Object.fromEntries(tokens.map((t, i) => [t, i]));
}

const VOCAB = buildVocab(MERGES);
/** Id of a single character symbol: its position among the byte symbols (+256 with `</w>`). */
const ch = (c: string, endOfWord = false) => VOCAB[c + (endOfWord ? '</w>' : '')];

let root: string;
let hfDir: string; // vocab.json + merges.txt
let jsonDir: string; // tokenizer.json, merges as strings
let pairDir: string; // tokenizer.json, merges as pairs, with a pad override
let tok: ClipTokenizer;

function writeDir(name: string, files: Record<string, unknown>): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const [file, content] of Object.entries(files)) {
    writeFileSync(join(dir, file), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

const mergesTxt = (merges: Array<[string, string]>) => `#version: 0.2\n${merges.map((m) => m.join(' ')).join('\n')}\n`;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'clip-tokenizer-'));
  hfDir = writeDir('hf', {
    'vocab.json': VOCAB,
    'merges.txt': mergesTxt(MERGES),
    'special_tokens_map.json': { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' },
  });
  jsonDir = writeDir('json', {
    'tokenizer.json': {
      model: { type: 'BPE', end_of_word_suffix: '</w>', vocab: VOCAB, merges: MERGES.map((m) => m.join(' ')) },
    },
  });
  pairDir = writeDir('pairs', {
    'tokenizer.json': { model: { type: 'BPE', vocab: VOCAB, merges: MERGES } },
    // HF writes special tokens as AddedToken objects too; pad "!" is what open_clip-style repos use.
    'tokenizer_config.json': { pad_token: { __type: 'AddedToken', content: '!' }, model_max_length: 16 },
  });
  tok = ClipTokenizer.fromDirectory(hfDir);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('bytesToUnicode', () => {
  it('is GPT-2’s table: printable Latin-1 maps to itself, the rest to U+0100…U+0143', () => {
    const table = bytesToUnicode();
    expect(table).toHaveLength(256);
    expect(new Set(table).size).toBe(256);
    expect(table[0x61]).toBe('a');
    expect(table[0x20]).toBe('Ġ'); // space
    expect(table[0x0a]).toBe('Ċ'); // newline
    expect(table[0xad]).toBe('Ń'); // soft hyphen, the last non-printable byte
    expect(ch('!')).toBe(0);
    expect(ch('a', true)).toBe(320); // as in the real CLIP vocabulary
  });
});

describe('ClipTokenizer.encode', () => {
  it('encodes "a photo of a cat" by the merge ranks', () => {
    expect(tok.encode('a photo of a cat')).toEqual([320, 518, 515, 320, 517]);
    expect(tok.tokenize('a photo of a cat')).toEqual(['a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>']);
  });

  it('merges the lowest-ranked pair first', () => {
    // c a t</w>: (a, t</w>) outranks (c, a), so "cat" becomes one token.
    expect(tok.encode('cat')).toEqual([517]);
    // With (c, a) ranked first, "ca" forms and (ca, t</w>) has no merge: two tokens.
    const swapped: Array<[string, string]> = [
      ['c', 'a'],
      ['a', 't</w>'],
      ['c', 'at</w>'],
    ];
    const other = new ClipTokenizer(buildVocab(swapped), swapped);
    expect(other.tokenize('cat')).toEqual(['ca', 't</w>']);
    expect(other.encode('cat')).toEqual([512, ch('t', true)]);
    // Pairs not in the merges stay apart; the word-final symbol carries </w>.
    expect(tok.encode('ca')).toEqual([ch('c'), ch('a', true)]);
    expect(tok.encode('tac')).toEqual([ch('t'), ch('a'), ch('c', true)]);
  });

  it('splits punctuation runs and single digits', () => {
    expect(tok.encode('cat, dog!')).toEqual([517, ch(',', true), 525, ch('!', true)]);
    expect(tok.tokenize('dog?!')).toEqual(['dog</w>', '?', '!</w>']);
    expect(tok.tokenize('a12')).toEqual(['a</w>', '1</w>', '2</w>']);
  });

  it('splits contractions and folds case', () => {
    expect(tok.encode("it's")).toEqual([520, 521]);
    expect(tok.encode("IT'S")).toEqual([520, 521]);
    expect(tok.encode('The DOG')).toEqual([523, 525]);
    // Without ftfy, a curly apostrophe is punctuation, not a contraction.
    expect(tok.tokenize('it’s')).toEqual(['it</w>', 'â', 'Ģ', 'Ļ</w>', 's</w>']);
  });

  it('encodes multi-byte UTF-8 through the byte symbols', () => {
    // café: c a f Ã ©</w> → (c, a) rank 7, then (Ã, ©</w>) rank 14.
    expect(tok.tokenize('café')).toEqual(['ca', 'f', 'Ã©</w>']);
    expect(tok.encode('café')).toEqual([519, ch('f'), 526]);
    expect(tok.encode('CAFÉ')).toEqual([519, ch('f'), 526]);
    // 😀 is F0 9F 98 80: four byte symbols, no merges.
    expect(tok.encode('😀')).toEqual([172, 253, 246, 478]);
    expect(tok.tokenize('😀')).toEqual(['ð', 'Ł', 'ĺ', 'Ģ</w>']);
  });

  it('cleans whitespace and HTML entities like CLIP (unescaping twice)', () => {
    expect(clipClean('  A\tPhoto\n\nof&nbsp;a  &amp;amp; CAT \u3000')).toBe('a photo of a & cat');
    expect(tok.encode('  A\tPhoto\n\nof&nbsp;a  &amp;amp; CAT ')).toEqual([320, 518, 515, 320, ch('&', true), 517]);
    expect(tok.encode('it&#39;s')).toEqual([520, 521]);
    expect(htmlUnescape('&lt;b&gt; &#x27;&quot; &#128; &#0; &unknown;')).toBe('<b> \'" € \ufffd &unknown;');
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode(' \n\t ')).toEqual([]);
  });

  it('maps special tokens written in the text to their ids', () => {
    expect(tok.encode('a <|endoftext|> cat')).toEqual([320, EOS, 517]);
    expect(tok.encode('<|STARTOFTEXT|>')).toEqual([BOS]);
  });
});

describe('ClipTokenizer.encodeBatch', () => {
  it('wraps rows in bos/eos, pads with the pad id and masks the padding', () => {
    const { ids, attentionMask, lengths, eosIndex } = tok.encodeBatch(['a photo of a cat', '', 'DOG'], 8);
    expect(Array.from(ids)).toEqual([
      BOS,
      320,
      518,
      515,
      320,
      517,
      EOS,
      EOS,
      BOS,
      EOS,
      EOS,
      EOS,
      EOS,
      EOS,
      EOS,
      EOS,
      BOS,
      525,
      EOS,
      EOS,
      EOS,
      EOS,
      EOS,
      EOS,
    ]);
    expect(Array.from(attentionMask)).toEqual([1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0]);
    expect(lengths).toEqual([7, 2, 3]);
    expect(eosIndex).toEqual([6, 1, 2]);
    expect(ids).toBeInstanceOf(Int32Array);
  });

  it('truncates to the context length keeping eos last', () => {
    const { ids, attentionMask, lengths, eosIndex } = tok.encodeBatch(['a photo of a cat'], 4);
    expect(Array.from(ids)).toEqual([BOS, 320, 518, EOS]);
    expect(Array.from(attentionMask)).toEqual([1, 1, 1, 1]);
    expect(lengths).toEqual([4]);
    expect(eosIndex).toEqual([3]);
    expect(Array.from(tok.encodeBatch(['cat'], 2).ids)).toEqual([BOS, EOS]);
    expect(() => tok.encodeBatch(['cat'], 1)).toThrow(/contextLength/);
  });

  it('defaults to 77 tokens', () => {
    const { ids } = tok.encodeBatch(['cat', 'dog']);
    expect(tok.contextLength).toBe(77);
    expect(ids).toHaveLength(2 * 77);
  });
});

describe('ClipTokenizer.decode', () => {
  it('inverts encode for cleaned lower-case text', () => {
    for (const text of ['a photo of a cat', 'the dog', 'café 😀 naïve 東京', 'tac ?! 7']) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
    // As in CLIP, every token ends a word on decode: a split-off contraction gets a space.
    expect(tok.decode(tok.encode("it's"))).toBe("it 's");
    expect(tok.decode(tok.encode('A  PHOTO\nof a Cat'))).toBe('a photo of a cat');
  });

  it('keeps or skips the special tokens', () => {
    const row = Array.from(tok.encodeBatch(['a cat'], 6).ids);
    expect(tok.decode(row)).toBe('<|startoftext|>a cat <|endoftext|><|endoftext|><|endoftext|>');
    expect(tok.decode(row, { skipSpecialTokens: true })).toBe('a cat');
    expect(() => tok.decode([99999])).toThrow(/99999/);
  });
});

describe('ClipTokenizer.fromDirectory', () => {
  it('reads tokenizer.json with string or pair merges like vocab.json + merges.txt', () => {
    const fromJson = ClipTokenizer.fromDirectory(jsonDir);
    const fromPairs = ClipTokenizer.fromDirectory(pairDir);
    const text = "A photo of a CAT, it's café 😀";
    expect(fromJson.encode(text)).toEqual(tok.encode(text));
    expect(fromPairs.encode(text)).toEqual(tok.encode(text));
    expect(fromJson.id).toBe(tok.id);
  });

  it('takes special tokens and context length from tokenizer_config.json', () => {
    const t = ClipTokenizer.fromDirectory(pairDir);
    expect(t.padId).toBe(0); // "!"
    expect(t.contextLength).toBe(16);
    expect(Array.from(t.encodeBatch(['cat']).ids.slice(0, 4))).toEqual([BOS, 517, EOS, 0]);
    // Explicit options win over the files.
    expect(ClipTokenizer.fromDirectory(pairDir, { pad: '<|endoftext|>', contextLength: 5 }).padId).toBe(EOS);
  });

  it('has a stable id that changes with the merges', () => {
    expect(tok.id).toMatch(/^clip-bpe-v529-[0-9a-f]{12}$/);
    expect(new ClipTokenizer(VOCAB, MERGES).id).toBe(tok.id);
    expect(new ClipTokenizer(new Map(Object.entries(VOCAB)), MERGES).id).toBe(tok.id);
    expect(new ClipTokenizer(VOCAB, MERGES.slice(0, -1)).id).not.toBe(tok.id);
  });

  it('names the missing directory or files', () => {
    const missing = join(root, 'nope');
    expect(() => ClipTokenizer.fromDirectory(missing)).toThrow(`model directory not found: ${missing}`);
    const onlyVocab = writeDir('only-vocab', { 'vocab.json': VOCAB });
    expect(() => ClipTokenizer.fromDirectory(onlyVocab)).toThrow(
      `ClipTokenizer: ${onlyVocab} needs vocab.json + merges.txt or tokenizer.json; ` +
        `missing: merges.txt, tokenizer.json`,
    );
    const broken = writeDir('broken', { 'tokenizer.json': '{"model": ' });
    expect(() => ClipTokenizer.fromDirectory(broken)).toThrow(/cannot read .*tokenizer\.json/);
    const noSpecials = writeDir('no-specials', { 'vocab.json': { a: 0 }, 'merges.txt': '#version: 0.2\n' });
    expect(() => ClipTokenizer.fromDirectory(noSpecials)).toThrow(
      /bos token "<\|startoftext\|>" is not in the vocabulary/,
    );
  });

  it('throws DataError for a bad directory or file and ConfigError for a bad context length', () => {
    const missing = join(root, 'absent');
    expect(() => ClipTokenizer.fromDirectory(missing)).toThrow(DataError);
    expect(() => ClipTokenizer.fromDirectory(missing)).toThrow(expect.objectContaining({ code: 'DATA_INVALID' }));
    expect(() => ClipTokenizer.fromDirectory(missing)).toThrow(`ClipTokenizer: model directory not found: ${missing}`);
    const broken = writeDir('broken-2', { 'tokenizer.json': '{"model": ' });
    expect(() => ClipTokenizer.fromDirectory(broken)).toThrow(DataError);
    expect(() => parseMergesTxt('a b c\n')).toThrow(DataError);
    expect(() => new ClipTokenizer(VOCAB, MERGES, { contextLength: 1 })).toThrow(ConfigError);
    expect(() => tok.encodeBatch(['cat'], 1)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => tok.encodeBatch(['cat'], 1)).toThrow(
      'ClipTokenizer: contextLength must be an integer ≥ 2 (bos + eos), got 1',
    );
  });

  it('parses merges.txt with or without a header', () => {
    expect(parseMergesTxt('#version: 0.2\na b\r\nab c</w>\n\n')).toEqual([
      ['a', 'b'],
      ['ab', 'c</w>'],
    ]);
    expect(parseMergesTxt('a b\n')).toEqual([['a', 'b']]);
    expect(() => parseMergesTxt('a b c\n')).toThrow(/line 1/);
  });
});

// ---------------------------------------------------------------------------------------------
// An independent reference: OpenAI's simple_tokenizer.py logic (minus ftfy), run by python3.

const PYTHON_REFERENCE = String.raw`
import html, json, sys
import regex as re

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~")+1)) + list(range(ord("¡"), ord("¬")+1)) + list(range(ord("®"), ord("ÿ")+1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b); cs.append(2**8+n); n += 1
    return dict(zip(bs, [chr(c) for c in cs]))

def get_pairs(word):
    return set(zip(word[:-1], word[1:]))

encoder = json.load(open(sys.argv[1], encoding="utf-8"))
lines = open(sys.argv[2], encoding="utf-8").read().split("\n")
merges = [tuple(l.split()) for l in lines[1:] if l]
bpe_ranks = dict(zip(merges, range(len(merges))))
byte_encoder = bytes_to_unicode()
cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
pat = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                 re.IGNORECASE)

def bpe(token):
    if token in cache:
        return cache[token]
    word = tuple(token[:-1]) + (token[-1] + "</w>",)
    pairs = get_pairs(word)
    if not pairs:
        return token + "</w>"
    while True:
        bigram = min(pairs, key=lambda p: bpe_ranks.get(p, float("inf")))
        if bigram not in bpe_ranks:
            break
        first, second = bigram
        new_word = []
        i = 0
        while i < len(word):
            try:
                j = word.index(first, i)
                new_word.extend(word[i:j]); i = j
            except ValueError:
                new_word.extend(word[i:]); break
            if word[i] == first and i < len(word) - 1 and word[i+1] == second:
                new_word.append(first + second); i += 2
            else:
                new_word.append(word[i]); i += 1
        word = tuple(new_word)
        if len(word) == 1:
            break
        pairs = get_pairs(word)
    word = " ".join(word)
    cache[token] = word
    return word

def encode(text):
    text = html.unescape(html.unescape(text)).strip()  # basic_clean without ftfy.fix_text
    text = re.sub(r"\s+", " ", text).strip().lower()    # whitespace_clean, then lower()
    ids = []
    for token in re.findall(pat, text):
        token = "".join(byte_encoder[b] for b in token.encode("utf-8"))
        ids.extend(encoder[t] for t in bpe(token).split(" "))
    return ids

print(json.dumps([encode(t) for t in json.loads(sys.stdin.buffer.read().decode("utf-8"))]))
`;

const pythonWithRegex = findPython(['regex']);
const hasPythonRegex = pythonWithRegex !== undefined;

/** Random captions from words the merges know, entities, odd whitespace and random characters. */
function randomTexts(count: number): string[] {
  const rand = seeded(20240607);
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  // Entities end with a space so random letters never extend them into another entity name.
  const words = [
    'a',
    'photo',
    'of',
    'cat',
    'dog',
    'the',
    "it's",
    "IT'S",
    "we're",
    'café',
    'CAFÉ',
    '😀',
    '🎉🎉',
    '&amp; ',
    '&lt; ',
    '&#39;s ',
    '&amp;amp; ',
    '123',
    'x9y',
    '?!',
    '...',
    '<|endoftext|>',
    'ΟΔΟΣ',
    'İstanbul',
    'naïve',
    '東京',
    'photophoto',
    'ooooo',
    'thethe',
  ];
  const chars = [
    ...('abcdefghijklmnopqrstuvwxyzACTOPHSDG0123456789' +
      '.,!?\'"-_()[]/:@#$%*+=~`^|<>éÉüßøñçΣ日本😀\u00a0\u3000\u0085\ufeff\u001c'),
  ];
  const separators = [' ', ' ', ' ', '', '  ', '\t', '\n', ', '];
  return Array.from({ length: count }, () => {
    const n = 1 + Math.floor(rand() * 10);
    let text = rand() < 0.3 ? pick(separators) : '';
    for (let i = 0; i < n; i++) {
      const piece =
        rand() < 0.6 ? pick(words) : Array.from({ length: 1 + Math.floor(rand() * 4) }, () => pick(chars)).join('');
      text += piece + pick(separators);
    }
    return text;
  });
}

describe('ClipTokenizer against a Python reference', () => {
  it.skipIf(!hasPythonRegex)(
    `matches simple_tokenizer.py (minus ftfy) on 60 random captions` +
      `${hasPythonRegex ? '' : ' [skipped: python3 with the regex module not found]'}`,
    () => {
      const texts = randomTexts(60);
      const script = join(root, 'reference.py');
      writeFileSync(script, PYTHON_REFERENCE);
      const run = spawnSync(pythonWithRegex!, [script, join(hfDir, 'vocab.json'), join(hfDir, 'merges.txt')], {
        input: JSON.stringify(texts),
        encoding: 'utf8',
      });
      expect(run.stderr).toBe('');
      const expected = JSON.parse(run.stdout) as number[][];
      texts.forEach((text, i) => expect(tok.encode(text), JSON.stringify(text)).toEqual(expected[i]));
    },
  );
});
