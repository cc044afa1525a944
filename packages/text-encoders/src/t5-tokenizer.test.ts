import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError } from '@matryoshka-ts/core';
import { findPython } from '@matryoshka-ts/test-utils';
import { T5_PIECES, t5Id, t5TokenizerJson } from './t5-test-fixtures.js';
import { T5Tokenizer, t5Normalize } from './t5-tokenizer.js';

let root: string;
let dir: string;
let tok: T5Tokenizer;
const [HELLO, , , WOR, LD, S, SPACE, UNK, EOS, PAD] = [
  '▁hello',
  '▁he',
  'llo',
  '▁wor',
  'ld',
  's',
  '▁',
  '<unk>',
  '</s>',
  '<pad>',
].map(t5Id);

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 't5-tokenizer-'));
  dir = join(root, 'flan-t5-tiny');
  mkdirSync(dir);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(t5TokenizerJson()));
  tok = T5Tokenizer.fromDirectory(dir);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('T5Tokenizer: Viterbi segmentation', () => {
  it('takes the segmentation with the highest total log-probability', () => {
    // ▁hello (−6.0) beats ▁he + llo (−6.5); ▁wor + ld (−5.5) beats ▁world (−6.0).
    expect(tok.tokenize('hello world')).toEqual(['▁hello', '▁wor', 'ld']);
    expect(tok.encode('hello world')).toEqual([HELLO, WOR, LD]);
    // ▁hello + s (−8.5) beats ▁he + llo + s (−9.0).
    expect(tok.encode('hellos')).toEqual([HELLO, S]);
    // No ▁hel piece: ▁he + l + l + o (−15) loses to ▁he + llo (−6.5).
    expect(tok.tokenize('hello')).toEqual(['▁hello']);
    expect(tok.tokenize('hellollo')).toEqual(['▁hello', 'llo']);
  });

  it('matches the worked example of HF tokenizers’ Unigram::encode', () => {
    // From the doc comment of tokenizers' unigram model: "abcdacdxx" → abcd, a, cd, xx (one unk).
    const pieces: Array<[string, number]> = [
      ['<unk>', 0],
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['d', 0],
      ['cd', 1],
      ['ab', 2],
      ['abc', 5],
      ['abcd', 10],
      ['</s>', 0],
    ];
    const plain = new T5Tokenizer(pieces, { unkId: 0, prependScheme: 'never' });
    expect(plain.encode('abcdacdxx')).toEqual([8, 1, 5, 0]);
  });

  it('maps characters no piece covers to unk, fusing runs of them', () => {
    // "▁" then one unk for 😀 (as T5 encodes emoji: [3, 2]).
    expect(tok.encode('😀')).toEqual([SPACE, UNK]);
    // 😀😀 and x are all unknown: one fused unk.
    expect(tok.encode('😀😀x')).toEqual([SPACE, UNK]);
    // Known pieces on either side keep unks apart: ▁he is not a prefix of "▁h😀e".
    expect(tok.tokenize('h😀e hello')).toEqual(['▁', 'h', '<unk>', 'e', '▁hello']);
  });

  it('normalizes like T5: NFKC, whitespace runs, controls', () => {
    expect(t5Normalize('  ﬁne\t\n ｈｅｌｌｏ\u0007  ')).toBe('fine hello');
    // The ligature ﬁ becomes "fi": ▁fi + ne (−6.5) beats ▁ + fi + ne (−8.0).
    expect(tok.tokenize('ﬁne')).toEqual(['▁fi', 'ne']);
    expect(tok.encode('ｈｅｌｌｏ\u3000\u3000ｗｏｒｌｄ')).toEqual([HELLO, WOR, LD]);
    expect(tok.encode(' hello\u200b\nworld ')).toEqual([HELLO, WOR, LD]);
    // T5 keeps case: no lower-casing, so "Hello" has no ▁hello.
    expect(tok.tokenize('Hello')).toEqual(['▁', '<unk>', 'e', 'llo']);
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode(' \t ')).toEqual([]);
  });

  it('reads special tokens written in the text as themselves', () => {
    expect(tok.encode('hello</s>')).toEqual([HELLO, EOS]);
    expect(tok.encode('<extra_id_0> world')).toEqual([t5Id('<extra_id_0>'), WOR, LD]);
  });
});

describe('T5Tokenizer.encodeBatch', () => {
  it('appends </s>, pads with <pad> (id 0) and masks the padding', () => {
    const { ids, attentionMask, lengths } = tok.encodeBatch(['hello world', '', 'hellos'], 5);
    expect(PAD).toBe(0);
    expect(EOS).toBe(1);
    expect(Array.from(ids)).toEqual([HELLO, WOR, LD, EOS, PAD, EOS, PAD, PAD, PAD, PAD, HELLO, S, EOS, PAD, PAD]);
    expect(Array.from(attentionMask)).toEqual([1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0]);
    expect(lengths).toEqual([4, 1, 3]);
    expect(ids).toBeInstanceOf(Int32Array);
  });

  it('truncates keeping </s> last', () => {
    const { ids, attentionMask, lengths } = tok.encodeBatch(['hello hello hello world'], 4);
    expect(Array.from(ids)).toEqual([HELLO, HELLO, HELLO, EOS]);
    expect(Array.from(attentionMask)).toEqual([1, 1, 1, 1]);
    expect(lengths).toEqual([4]);
    expect(Array.from(tok.encodeBatch(['hello'], 1).ids)).toEqual([EOS]);
    expect(() => tok.encodeBatch(['hello'], 0)).toThrow(/maxLength/);
    expect(tok.encodeBatch(['hello']).ids).toHaveLength(128);
  });

  it('decodes back to text', () => {
    const { ids } = tok.encodeBatch(['hello  world hellos'], 8);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hello world hellos');
    expect(tok.decode([HELLO, EOS])).toBe('hello</s>');
  });
});

describe('T5Tokenizer.fromDirectory', () => {
  it('has a stable id that changes with the scores', () => {
    expect(tok.id).toMatch(/^t5-unigram-v19-[0-9a-f]{12}$/);
    expect(T5Tokenizer.fromDirectory(dir).id).toBe(tok.id);
    const changed = t5TokenizerJson() as { model: { vocab: Array<[string, number]> } };
    changed.model.vocab = T5_PIECES.map(([p, s]) => [p, p === '▁world' ? -5.0 : s]);
    const other = T5Tokenizer.fromJson(changed);
    expect(other.id).not.toBe(tok.id);
    // With ▁world at −5.0 it now beats ▁wor + ld (−5.5).
    expect(other.tokenize('world')).toEqual(['▁world']);
    expect(tok.eosId).toBe(1);
    expect(tok.unkId).toBe(2);
    expect(tok.padId).toBe(0);
  });

  it('names a missing directory or file, and refuses non-unigram tokenizers', () => {
    const missing = join(root, 'nope');
    expect(() => T5Tokenizer.fromDirectory(missing)).toThrow(`T5Tokenizer: model directory not found: ${missing}`);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    expect(() => T5Tokenizer.fromDirectory(empty)).toThrow(`T5Tokenizer: ${empty} has no tokenizer.json`);
    const bpe = join(root, 'bpe');
    mkdirSync(bpe);
    writeFileSync(join(bpe, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: {}, merges: [] } }));
    expect(() => T5Tokenizer.fromDirectory(bpe)).toThrow(/model\.type "BPE", not "Unigram"/);
    const broken = join(root, 'broken');
    mkdirSync(broken);
    writeFileSync(join(broken, 'tokenizer.json'), '{"model": ');
    expect(() => T5Tokenizer.fromDirectory(broken)).toThrow(/cannot read .*tokenizer\.json/);
    expect(() => T5Tokenizer.fromJson({ model: { type: 'Unigram', vocab: T5_PIECES } })).toThrow(/no model\.unk_id/);
    expect(() => new T5Tokenizer([['a', 0]], { unkId: 0 })).toThrow(/eos token "<\/s>" is not in the vocabulary/);
  });

  it('throws a DataError (code DATA_INVALID) for a missing directory or a tokenizer file of another kind', () => {
    const missing = join(root, 'absent');
    expect(() => T5Tokenizer.fromDirectory(missing)).toThrow(DataError);
    expect(() => T5Tokenizer.fromDirectory(missing)).toThrow(expect.objectContaining({ code: 'DATA_INVALID' }));
    expect(() => T5Tokenizer.fromDirectory(missing)).toThrow(`T5Tokenizer: model directory not found: ${missing}`);
    const bpe = { model: { type: 'BPE', vocab: {}, merges: [] } };
    expect(() => T5Tokenizer.fromJson(bpe, 'x.json')).toThrow(DataError);
    expect(() => T5Tokenizer.fromJson(bpe, 'x.json')).toThrow(
      `T5Tokenizer: x.json has model.type "BPE", not "Unigram" (not a SentencePiece unigram tokenizer such as T5's)`,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// An independent reference: HF `tokenizers` on the same tokenizer.json, when python3 has it.

const PYTHON_REFERENCE = String.raw`
import json, sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
texts = json.loads(sys.stdin.buffer.read().decode("utf-8"))
print(json.dumps([tok.encode(t).ids for t in texts]))
`;

const tokenizersPython = findPython(['tokenizers']);
const hasTokenizers = tokenizersPython !== undefined;
const referenceTitle = hasTokenizers
  ? 'matches HF tokenizers on the same tokenizer.json'
  : 'matches HF tokenizers on the same tokenizer.json ' +
    '(skipped: python3 has no `tokenizers` module, nor `sentencepiece`)';

describe('T5Tokenizer against HF tokenizers', () => {
  it.skipIf(!hasTokenizers)(referenceTitle, () => {
    const texts = [
      'hello world',
      'hellos hellollo',
      '😀😀x h😀e',
      'ﬁne ｈｅｌｌｏ',
      '  hello \t world ',
      'hello</s>',
      '<extra_id_0> world',
      '',
      'Hello WORLD',
    ];
    const run = spawnSync(tokenizersPython!, ['-c', PYTHON_REFERENCE, join(dir, 'tokenizer.json')], {
      input: JSON.stringify(texts),
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    const expected = JSON.parse(run.stdout) as number[][];
    expect(texts.map((t) => [...tok.encode(t), EOS])).toEqual(expected);
  });
});

// An independent reference that Debian ships (python3-sentencepiece): train a small unigram
// model in sentencepiece, hand its pieces and scores to T5Tokenizer, compare the ids on
// captions with unknown characters, case, odd whitespace and NFKC-folded forms.

const SENTENCEPIECE_REFERENCE = String.raw`
import io, json, random
import sentencepiece as spm
random.seed(7)
pre = ["", "", "un", "re", "pre"]
stems = ["photo", "cat", "dog", "run", "walk", "talk", "jump", "smile",
         "grin", "play", "read", "paint", "draw", "sing", "look"]
suf = ["", "", "s", "ing", "ed", "er", "ers", "ly", "ful", "ness"]
def word():
    return random.choice(pre) + random.choice(stems) + random.choice(suf)
corpus = [" ".join(word() for _ in range(random.randint(2, 9))) for _ in range(3000)]
model = io.BytesIO()
spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_writer=model, vocab_size=90, model_type="unigram",
    pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1, hard_vocab_limit=False, minloglevel=2)
sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
odd = ["😀", "X", "7", "  ", "\t", "\u3000", "ｃａｔ", "ﬁ", "é", "Cat", "\n", "zz"]
def caption():
    parts = [random.choice([word(), word(), word(), random.choice(odd)]) for _ in range(random.randint(1, 8))]
    return random.choice([" ", "  ", ""]) + " ".join(parts) + random.choice(["", " "])
texts = [caption() for _ in range(300)] + ["", "   ", "😀😀 X7zz catcat"]
pieces = [[sp.id_to_piece(i), sp.get_score(i)] for i in range(sp.get_piece_size())]
print(json.dumps({"pieces": pieces, "texts": texts, "ids": [sp.encode(t) for t in texts]}))
`;

/** A python3 that has sentencepiece: the one on PATH, or Debian's (python3-sentencepiece). */
const spPython = findPython(['sentencepiece']);

describe('T5Tokenizer against sentencepiece', () => {
  const title = spPython
    ? 'segments like sentencepiece on 300 random captions'
    : 'segments like sentencepiece on 300 random captions ' +
      '(skipped: no python3 with `sentencepiece`; apt-get install python3-sentencepiece)';
  it.skipIf(!spPython)(title, () => {
    const run = spawnSync(spPython!, ['-c', SENTENCEPIECE_REFERENCE], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(run.status, run.stderr).toBe(0);
    const { pieces, texts, ids } = JSON.parse(run.stdout) as {
      pieces: Array<[string, number]>;
      texts: string[];
      ids: number[][];
    };
    const sp = new T5Tokenizer(pieces, { unkId: 2 });
    const mismatches = texts
      .map((t, i) => ({ text: t, ours: sp.encode(t), theirs: ids[i] }))
      .filter((m) => JSON.stringify(m.ours) !== JSON.stringify(m.theirs));
    expect(mismatches.slice(0, 5)).toEqual([]);
  });
});
