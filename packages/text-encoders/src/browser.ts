// `@matryoshka-ts/text-encoders/browser`: the encoders that import no Node module, for web pages
// (the offline hashed-word encoder of the bundled runs). The ONNX encoders, their tokenizers'
// file loading and the feature cache are the package's main entry.
export type { EncodedText, TextEncoder } from './text-encoder.js';
export { HashedWordEncoder, words } from './hashed-words.js';
export type { HashedWordOptions } from './hashed-words.js';
