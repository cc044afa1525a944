import { ConfigError, DataError } from '@matryoshka-ts/core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Example, ImageDataset } from './dataset.js';
import { IMAGE_TOO_LARGE, ImageTooLargeError } from './image-limit.js';
import { type RgbImage, decodePng, downsampleBox } from './png.js';

interface EmojiEntry {
  name: string | null;
  short_name: string;
  image: string;
  category: string;
  sort_order: number;
  has_img_twitter?: boolean;
  skin_variations?: Record<string, { image: string; has_img_twitter?: boolean }>;
}

const SKIN_TONES: Record<string, string> = {
  '1F3FB': 'light skin tone',
  '1F3FC': 'medium-light skin tone',
  '1F3FD': 'medium skin tone',
  '1F3FE': 'medium-dark skin tone',
  '1F3FF': 'dark skin tone',
};

export interface EmojiOptions {
  /** Square size of the images (64 divided by a power of two; default 64). */
  resolution?: number;
  /** Include the skin-tone variants (default true: 3,786 images; false: 1,911). */
  skinTones?: boolean;
  /** Keep only these categories (e.g. `['Smileys & Emotion']`); default all 10. */
  categories?: string[];
  /** Colour behind transparent pixels (default white). */
  background?: [number, number, number];
  /** Folder of the `emoji-datasource-twitter` package (default: resolved from node_modules). */
  packageDir?: string;
}

function emojiPackageDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('emoji-datasource-twitter/package.json'));
}

/**
 * The bundled default data set: Twitter's Twemoji at 64×64 from the npm package
 * `emoji-datasource-twitter` (images CC-BY 4.0, © Twitter/X and contributors). Captions are the
 * emoji names ("grinning face", "woman technologist: medium skin tone"), labels the categories
 * ("Smileys & Emotion", …). Decoded once into memory (≈ 46 MB at 64 px).
 */
export function loadEmojiDataset(options: EmojiOptions = {}): ImageDataset {
  const resolution = options.resolution ?? 64;
  const factor = emojiDownsampleFactor(resolution, 'emoji');
  const { classNames, items, imageDir, keep } = listEmoji(options);
  const skipped: Record<string, number> = {};
  const examples: Example[] = [];
  for (const item of items) {
    const rgb = readEmojiImage(imageDir, item, skipped, options.background);
    if (rgb) examples.push({ image: downsampleBox(rgb, factor).data, caption: item.caption, label: item.label });
  }
  if (examples.length === 0) throw new DataError(`emoji: no readable image under ${imageDir}`);
  return {
    id:
      `emoji-twitter-16.0.0@${resolution}${options.skinTones === false ? '-noskin' : ''}` +
      `${keep ? `[${[...keep].join('|')}]` : ''}`,
    size: examples.length,
    resolution,
    classNames,
    skipped,
    get: (i) => examples[i],
  };
}

/**
 * The box-filter factor from the bundled 64 px images down to `resolution`; throws a ConfigError
 * (worded with `what`) unless `resolution` is 64 divided by a power of two.
 */
export function emojiDownsampleFactor(resolution: number, what: string): number {
  const factor = 64 / resolution;
  if (!Number.isInteger(factor) || (factor & (factor - 1)) !== 0) {
    throw new ConfigError(`${what}: resolution must be 64 divided by a power of two, got ${resolution}`);
  }
  return factor;
}

/**
 * Reads and decodes one bundled emoji to 64×64 RGB (transparency composited over `background`,
 * default white), or counts why not in `skipped` ('missing file', 'wrong size', 'image too large'
 * — a header declaring more than `MAX_INPUT_PIXELS` pixels, not decoded —, 'corrupt image') and
 * returns undefined.
 */
export function readEmojiImage(
  imageDir: string,
  item: EmojiItem,
  skipped: Record<string, number>,
  background?: [number, number, number],
): RgbImage | undefined {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(join(imageDir, item.file));
  } catch {
    skipped['missing file'] = (skipped['missing file'] ?? 0) + 1;
    return undefined;
  }
  try {
    const rgb = decodePng(bytes, background);
    if (rgb.width !== 64 || rgb.height !== 64) {
      skipped['wrong size'] = (skipped['wrong size'] ?? 0) + 1;
      return undefined;
    }
    return rgb;
  } catch (error) {
    const reason = error instanceof ImageTooLargeError ? IMAGE_TOO_LARGE : 'corrupt image';
    skipped[reason] = (skipped[reason] ?? 0) + 1;
    return undefined;
  }
}

/** One bundled emoji image before decoding: its PNG file (in `imageDir`), caption and label. */
export interface EmojiItem {
  file: string;
  caption: string;
  label: number;
}

/**
 * The bundled emoji images with their captions and labels, in the data set's order, without reading
 * any image — shared by `loadEmojiDataset` and the streaming `bundledSource`.
 */
export function listEmoji(options: Pick<EmojiOptions, 'skinTones' | 'categories' | 'packageDir'> = {}): {
  classNames: string[];
  items: EmojiItem[];
  /** Folder of the 64×64 PNGs. */
  imageDir: string;
  /** The categories kept, when `options.categories` narrows them. */
  keep?: Set<string>;
} {
  const dir = options.packageDir ?? emojiPackageDir();
  const entries = JSON.parse(readFileSync(join(dir, 'emoji.json'), 'utf8')) as EmojiEntry[];
  entries.sort((a, b) => a.sort_order - b.sort_order);
  const classNames = [...new Set(entries.map((e) => e.category))];
  const unknown = (options.categories ?? []).filter((c) => !classNames.includes(c));
  if (unknown.length) {
    throw new ConfigError(`emoji: unknown categories ${JSON.stringify(unknown)}; available: ${classNames.join(', ')}`);
  }
  const keep = options.categories?.length ? new Set(options.categories) : undefined;
  const items: EmojiItem[] = [];
  for (const e of entries) {
    if (keep && !keep.has(e.category)) continue;
    const name = (e.name ?? e.short_name.replace(/[_-]/g, ' ')).toLowerCase();
    const label = classNames.indexOf(e.category);
    if (e.has_img_twitter !== false) items.push({ file: e.image, caption: name, label });
    if (options.skinTones ?? true) {
      for (const [key, v] of Object.entries(e.skin_variations ?? {})) {
        if (v.has_img_twitter === false) continue;
        const tones = key
          .split('-')
          .map((k) => SKIN_TONES[k])
          .filter(Boolean);
        items.push({
          file: v.image,
          caption: tones.length ? `${name}: ${[...new Set(tones)].join(', ')}` : name,
          label,
        });
      }
    }
  }
  return { classNames, items, imageDir: join(dir, 'img', 'twitter', '64'), keep };
}
