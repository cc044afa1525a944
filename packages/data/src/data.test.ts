import * as tf from '@tensorflow/tfjs-core';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { ConfigError } from '@matryoshka-ts/core';
import { type DataPosition, type ImageDataset, epochOrder, nextBatch } from './dataset.js';
import { loadEmojiDataset } from './emoji.js';
import { decodePng, downsampleBox, encodePng } from './png.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

describe('PNG decoding', () => {
  it('composites transparency over the background and round-trips RGB', () => {
    const png = new PNG({ width: 2, height: 1 });
    png.data = Buffer.from([255, 0, 0, 255, 0, 0, 255, 0]); // opaque red, fully transparent blue
    const bytes = new Uint8Array(PNG.sync.write(png));
    expect(Array.from(decodePng(bytes).data)).toEqual([255, 0, 0, 255, 255, 255]);
    expect(Array.from(decodePng(bytes, [0, 0, 0]).data)).toEqual([255, 0, 0, 0, 0, 0]);
    const rgb = { width: 2, height: 1, data: new Uint8Array([1, 2, 3, 4, 5, 6]) };
    expect(Array.from(decodePng(encodePng(rgb)).data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('throws on a corrupt or truncated file', () => {
    const good = encodePng({ width: 4, height: 4, data: new Uint8Array(48).fill(7) });
    expect(() => decodePng(good.slice(0, good.length - 20))).toThrow();
    expect(() => decodePng(new Uint8Array([1, 2, 3]))).toThrow();
  });

  it('box downsampling averages blocks', () => {
    const data = new Uint8Array(4 * 4 * 3);
    for (let i = 0; i < 16; i++) data.fill(i * 10, i * 3, i * 3 + 3);
    const out = downsampleBox({ width: 4, height: 4, data }, 2);
    // Top-left block holds pixels 0, 1, 4, 5 → values 0, 10, 40, 50 → mean 25.
    expect(out.width).toBe(2);
    expect(Array.from(out.data.slice(0, 3))).toEqual([25, 25, 25]);
    expect(() => downsampleBox({ width: 3, height: 3, data: new Uint8Array(27) }, 2)).toThrow(/cannot downsample/);
  });
});

describe('the bundled emoji data set', () => {
  let data: ImageDataset;
  beforeAll(() => {
    data = loadEmojiDataset();
  });

  it('holds the 3,786 Twemoji images at 64 px with captions and category labels', () => {
    expect(data.size).toBe(3786);
    expect(data.skipped).toEqual({});
    expect(data.classNames).toContain('Smileys & Emotion');
    const first = data.get(0);
    expect(first.caption).toBe('grinning face');
    expect(first.image.length).toBe(64 * 64 * 3);
    for (let i = 0; i < data.size; i += 97) expect(data.get(i).label).toBeLessThan(data.classNames.length);
    expect(new Set(Array.from({ length: data.size }, (_, i) => data.get(i).caption)).size).toBeGreaterThan(3000);
  });

  it('can be loaded at a lower resolution and without skin tones', () => {
    const small = loadEmojiDataset({ resolution: 16, skinTones: false });
    expect(small.size).toBe(1911);
    expect(small.get(0).image.length).toBe(16 * 16 * 3);
    expect(() => loadEmojiDataset({ resolution: 48 })).toThrow(/power of two/);
    const faces = loadEmojiDataset({ resolution: 16, skinTones: false, categories: ['Smileys & Emotion'] });
    expect(faces.size).toBe(169);
    expect(faces.classNames[faces.get(0).label]).toBe('Smileys & Emotion');
    expect(() => loadEmojiDataset({ categories: ['Faces'] })).toThrow(/unknown categories \["Faces"\]/);
  });

  it('reports a bad resolution or unknown categories as a ConfigError (code CONFIG_INVALID)', () => {
    expect(() => loadEmojiDataset({ resolution: 48 })).toThrow(ConfigError);
    expect(() => loadEmojiDataset({ resolution: 48 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => loadEmojiDataset({ resolution: 48 })).toThrow(
      'emoji: resolution must be 64 divided by a power of two, got 48',
    );
    expect(() => loadEmojiDataset({ categories: ['Faces'] })).toThrow(ConfigError);
  });
});

describe('batching', () => {
  const tiny: ImageDataset = {
    id: 'tiny',
    size: 5,
    resolution: 1,
    classNames: ['a'],
    skipped: {},
    get: (i) => ({ image: new Uint8Array([i * 50, 0, 255]), caption: `item ${i}`, label: 0 }),
  };

  it('epoch orders are seeded permutations', () => {
    const a = Array.from(epochOrder(100, 1, 0));
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(Array.from(epochOrder(100, 1, 0))).toEqual(a);
    expect(Array.from(epochOrder(100, 1, 1))).not.toEqual(a);
    expect(Array.from(epochOrder(100, 2, 0))).not.toEqual(a);
  });

  it('maps pixels to [−1, 1], wraps epochs, and resumes from a saved position without repeating or skipping', () => {
    const pos: DataPosition = { epoch: 0, cursor: 0 };
    const seen: string[] = [];
    for (let k = 0; k < 4; k++) {
      const batch = nextBatch(tiny, 3, 9, pos);
      const px = batch.images.dataSync();
      expect(Math.min(...px)).toBeGreaterThanOrEqual(-1);
      expect(Math.max(...px)).toBeLessThanOrEqual(1);
      seen.push(...batch.captions);
      batch.images.dispose();
    }
    // 12 draws: epoch 0 (5), epoch 1 (5), 2 from epoch 2; each epoch a permutation.
    expect(new Set(seen.slice(0, 5)).size).toBe(5);
    expect(new Set(seen.slice(5, 10)).size).toBe(5);
    const resumed: DataPosition = { epoch: 0, cursor: 0 };
    const again: string[] = [];
    const a = nextBatch(tiny, 7, 9, resumed);
    again.push(...a.captions);
    const saved = { ...resumed };
    const b = nextBatch(tiny, 5, 9, saved);
    again.push(...b.captions);
    expect(again).toEqual(seen.slice(0, 12));
    tf.dispose([a.images, b.images]);
  });
});
