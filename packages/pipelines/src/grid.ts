import { encodePng } from '@matryoshka-ts/data';
import type { LevelSamples } from './generate.js';

/** Grid cells are RGB: grey images repeat their one channel; RGB images are copied. */
export function rgbOf(channels: number): (values: Float32Array, at: number, c: number) => number {
  if (channels === 3) return (values, at, c) => values[at + c];
  if (channels === 1) return (values, at) => values[at];
  throw new Error(
    `a sample grid shows 1- or 3-channel images, not ${channels} channels (decode latents to images first)`,
  );
}

/** A value in [−1, 1] as a byte: round((v + 1)·127.5), clamped to [0, 255]. */
export function byteOf(value: number): number {
  return Math.max(0, Math.min(255, Math.round((value + 1) * 127.5)));
}

/**
 * A PNG grid of samples: one row per level (level 0 on top), each image upscaled (nearest) to the
 * top level's size, separated by a 2-pixel white border; a clip's frames stand side by side.
 * `levels[l].images` holds N samples of [frames, r, r, channels] values in [−1, 1].
 */
export function sampleGridPng(levels: readonly LevelSamples[]): Uint8Array {
  const size = levels[0].resolution;
  const n = levels[0].images.length;
  const frames = Math.max(...levels.map((l) => l.frames));
  const gap = 2;
  const width = n * frames * (size + gap) + gap;
  const height = levels.length * (size + gap) + gap;
  const data = new Uint8Array(width * height * 3).fill(255);
  levels.forEach((level, row) => {
    const { resolution, channels } = level;
    const rgb = rgbOf(channels);
    const scale = size / resolution;
    const frameSize = resolution * resolution * channels;
    level.images.forEach((img, sample) => {
      for (let f = 0; f < level.frames; f++) {
        const col = sample * frames + f;
        for (let y = 0; y < size; y++)
          for (let x = 0; x < size; x++) {
            const src = f * frameSize + (Math.floor(y / scale) * resolution + Math.floor(x / scale)) * channels;
            const dst = ((gap + row * (size + gap) + y) * width + gap + col * (size + gap) + x) * 3;
            for (let c = 0; c < 3; c++) data[dst + c] = byteOf(rgb(img, src, c));
          }
      }
    });
  });
  return encodePng({ width, height, data });
}
