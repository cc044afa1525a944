export type { EncodedText, TextEncoder } from './text-encoder.js';
export { HashedWordEncoder, words } from './hashed-words.js';
export type { HashedWordOptions } from './hashed-words.js';
export { ClipTokenizer, bytesToUnicode, clipClean, htmlUnescape, parseMergesTxt } from './clip-tokenizer.js';
export type { ClipBatch, ClipTokenizerOptions } from './clip-tokenizer.js';
