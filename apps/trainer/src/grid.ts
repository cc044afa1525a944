import { encodePng } from '@matryoshka-ts/data';

/**
 * A PNG grid of samples: one row per level (level 0 on top), each image upscaled (nearest) to
 * the top level's size, separated by a 2-pixel white border. `levels[l]` holds N images of
 * [r, r, 3] values in [−1, 1].
 */
export function sampleGridPng(levels: Array<{ resolution: number; images: Float32Array[] }>): Uint8Array {
  const size = levels[0].resolution;
  const n = levels[0].images.length;
  const gap = 2;
  const width = n * (size + gap) + gap;
  const height = levels.length * (size + gap) + gap;
  const data = new Uint8Array(width * height * 3).fill(255);
  levels.forEach((level, row) => {
    const scale = size / level.resolution;
    level.images.forEach((img, col) => {
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const src = (Math.floor(y / scale) * level.resolution + Math.floor(x / scale)) * 3;
          const dst = ((gap + row * (size + gap) + y) * width + gap + col * (size + gap) + x) * 3;
          for (let c = 0; c < 3; c++) data[dst + c] = Math.max(0, Math.min(255, Math.round((img[src + c] + 1) * 127.5)));
        }
    });
  });
  return encodePng({ width, height, data });
}
