/**
 * A tiny T5-style unigram tokenizer.json for tests (not exported from the package). Scores are
 * chosen so that Viterbi's choices can be checked by hand:
 * - "▁hello" (−6.0) beats "▁he" + "llo" (−3.0 − 3.5 = −6.5): the whole word wins;
 * - "▁wor" + "ld" (−3.0 − 2.5 = −5.5) beats "▁world" (−6.0): the split wins, where greedy
 *   longest-match would take "▁world";
 * - the lowest score is −6.0, so an unknown character scores −16.
 */
export const T5_PIECES: Array<[string, number]> = [
  ['<pad>', 0], //    0
  ['</s>', 0], //     1
  ['<unk>', 0], //    2
  ['▁', -2.0], //     3
  ['▁hello', -6.0], // 4
  ['▁he', -3.0], //   5
  ['llo', -3.5], //   6
  ['▁world', -6.0], // 7
  ['▁wor', -3.0], //  8
  ['ld', -2.5], //    9
  ['s', -2.5], //    10
  ['h', -4.0], //    11
  ['e', -4.0], //    12
  ['l', -4.0], //    13
  ['o', -4.0], //    14
  ['▁fi', -3.5], //  15
  ['ne', -3.0], //   16
  ['fi', -3.0], //   17
  ['<extra_id_0>', 0], // 18
];

export const t5Id = (piece: string) => T5_PIECES.findIndex(([p]) => p === piece);

const added = (id: number) => ({
  id,
  content: T5_PIECES[id][0],
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
});

/**
 * The tokenizer.json, laid out as HF writes T5's, except for the normalizer: T5's Precompiled
 * charsmap cannot be written by hand, so it says NFKC (what we approximate it by), which also
 * lets HF `tokenizers` load the file for the comparison test.
 */
export function t5TokenizerJson(): object {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [0, 1, 2, 18].map(added),
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'WhitespaceSplit' },
        { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, vocab: T5_PIECES, byte_fallback: false },
  };
}
