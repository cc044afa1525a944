import { describe, expect, it } from 'vitest';
import { decodePng } from '@matryoshka-ts/data';
import { sampleGridPng } from './grid.js';

/** The grid's pixel (x, y) as [r, g, b]. */
function pixel(png: Uint8Array, x: number, y: number): number[] {
  const image = decodePng(png);
  const at = (y * image.width + x) * 3;
  return Array.from(image.data.slice(at, at + 3));
}

describe('sampleGridPng', () => {
  it('lays out one row per level, upscales lower levels (nearest) and maps [−1, 1] to [0, 255]', () => {
    // Level 0: 2×2 RGB, level 1: 1×1 RGB; one sample.
    const png = sampleGridPng([
      {
        resolution: 2,
        channels: 3,
        frames: 1,
        images: [Float32Array.from([-1, 0, 1, 1, 1, 1, -1, -1, -1, 0.5, 0.5, 0.5])],
      },
      { resolution: 1, channels: 3, frames: 1, images: [Float32Array.from([1, -1, -1])] },
    ]);
    const image = decodePng(png);
    expect([image.width, image.height]).toEqual([2 + 2 + 2, 2 * (2 + 2) + 2]);
    expect(pixel(png, 2, 2)).toEqual([0, 128, 255]); // round((x + 1)·127.5)
    expect(pixel(png, 3, 3)).toEqual([191, 191, 191]);
    for (const [x, y] of [
      [2, 6],
      [3, 7],
    ])
      expect(pixel(png, x, y)).toEqual([255, 0, 0]); // the 1 px level fills 2×2
    expect(pixel(png, 0, 0)).toEqual([255, 255, 255]); // border
  });

  it('repeats a grey channel, and puts a clip’s frames side by side', () => {
    const png = sampleGridPng([{ resolution: 1, channels: 1, frames: 3, images: [Float32Array.from([-1, 0, 1])] }]);
    const image = decodePng(png);
    expect([image.width, image.height]).toEqual([3 * (1 + 2) + 2, 1 * (1 + 2) + 2]);
    expect([pixel(png, 2, 2), pixel(png, 5, 2), pixel(png, 8, 2)]).toEqual([
      [0, 0, 0],
      [128, 128, 128],
      [255, 255, 255],
    ]);
  });

  it('refuses latent channels with a clear message', () => {
    expect(() => sampleGridPng([{ resolution: 1, channels: 4, frames: 1, images: [new Float32Array(4)] }])).toThrow(
      /not 4 channels \(decode latents/,
    );
  });
});
