export { decodePng, downsampleBox, encodePng } from './png.js';
export type { RgbImage } from './png.js';
export { epochOrder, nextBatch } from './dataset.js';
export type { Batch, DataPosition, Example, ImageDataset } from './dataset.js';
export { loadEmojiDataset } from './emoji.js';
export type { EmojiOptions } from './emoji.js';
