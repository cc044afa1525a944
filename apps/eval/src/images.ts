import { readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { countSkip, decodePng, expandSources, isDirectory, isFile, readRange, scanTar } from '@matryoshka-ts/data';
import type { Uint8Image } from '@matryoshka-ts/metrics';
import { decode as decodeJpeg } from 'jpeg-js';
import { type ColorType, PNG } from 'pngjs';
import { DataError } from '@matryoshka-ts/core';

/** Why an input was passed over; the keys of `ReadImagesOptions.skipped`. */
export type SkipReason = 'corrupt image' | 'empty file' | 'unreadable file' | 'truncated tar' | 'corrupt tar';

export interface ReadImagesOptions {
  /** Stop after this many images. */
  limit?: number;
  /** Incremented per skipped input, by reason (a `SkipReason`). */
  skipped?: Record<string, number>;
}

export interface NamedImage {
  /** The path relative to its directory source, the member name inside a tar, or a lone file's path as given. */
  name: string;
  /** 8-bit RGB, HWC. */
  image: Uint8Image;
}

/** A resolved piece of the source: a loose image file list (from a directory or a file) or a tar. */
type Source = { kind: 'files'; files: Array<{ name: string; path: string }> } | { kind: 'tar'; path: string };
type Skip = (reason: SkipReason) => void;
interface RawFile {
  name: string;
  bytes: Uint8Array;
}

const IMAGE_NAME = /\.(png|jpe?g)$/i;
const TAR_NAME = /\.tar$/i;

/**
 * Reads evaluation images, decoded to 8-bit RGB, in a stable order. `source` is a directory (searched
 * recursively, files in path order), an image file, a `.tar` (ustar/GNU/pax members), a brace pattern
 * (`shards/{00000..00003}.tar`, `{a,b}`), a glob with `*` in the last path component (`shards/*.tar`),
 * or a comma-separated list of those. All of it is resolved before the first image, so a missing path,
 * a pattern that matches nothing or a directory without images throws at once. Bad data never stops
 * the read: it is counted in `options.skipped` and passed over.
 */
export async function* readImages(source: string, options: ReadImagesOptions = {}): AsyncGenerator<NamedImage> {
  const { limit = Infinity } = options;
  if (!(limit >= 0)) throw new Error(`limit must be a non-negative number, got ${limit}`);
  const sources = resolveSources(source);
  if (limit === 0) return;
  const skipped = options.skipped ?? {};
  const skip: Skip = (reason) => countSkip(skipped, reason);
  let count = 0;
  for (const piece of sources) {
    const files = piece.kind === 'tar' ? tarImageMembers(piece.path, skipped) : looseFiles(piece.files, skip);
    for await (const { name, bytes } of files) {
      const image = decodeOrSkip(bytes, skip);
      if (!image) continue;
      yield { name, image };
      if (++count >= limit) return;
    }
  }
}

/** Writes `image` (1, 3 or 4 channels) as a PNG; readers never see a half-written file. */
export function writePng(path: string, image: Uint8Image): void {
  const colorType = PNG_COLOUR_TYPE[image.channels];
  if (colorType === undefined) throw new Error(`writePng: cannot write ${image.channels} channels`);
  if (image.data.length !== image.width * image.height * image.channels)
    throw new Error(
      `writePng: ${image.data.length} bytes for a ${image.width}×${image.height}×${image.channels} image`,
    );
  const format = { colorType, inputColorType: colorType, inputHasAlpha: image.channels === 4 };
  const png = new PNG({ width: image.width, height: image.height, ...format });
  png.data = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  const bytes = PNG.sync.write(png, format);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
}

const PNG_COLOUR_TYPE: Record<number, ColorType> = { 1: 0, 3: 2, 4: 6 };

/**
 * A size×size model sample with values in [-1, 1] (HWC; 1 or 3 channels, as the model's level has)
 * as 8-bit pixels: round((x + 1) · 127.5), clamped.
 */
export function floatToUint8Image(data: Float32Array, size: number, channels = 3): Uint8Image {
  if (channels !== 1 && channels !== 3) {
    throw new Error(`floatToUint8Image: ${channels}-channel samples are not images (decode latents first)`);
  }
  if (data.length !== size * size * channels)
    throw new Error(`floatToUint8Image: ${data.length} values for a ${size}×${size}×${channels} image`);
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Math.min(255, Math.max(0, Math.round((data[i] + 1) * 127.5)));
  return { data: out, width: size, height: size, channels };
}

// ---- decoding ----

function decodeOrSkip(bytes: Uint8Array, skip: Skip): Uint8Image | undefined {
  if (bytes.length === 0) return void skip('empty file');
  try {
    return decodeImage(bytes);
  } catch {
    return void skip('corrupt image');
  }
}

/**
 * A PNG or JPEG as 8-bit RGB (alpha over white). Picks the decoder by signature rather than file
 * name, so a mislabelled file still decodes; throws on anything else or on a damaged file.
 */
export function decodeImage(bytes: Uint8Array): Uint8Image {
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    // decodePng expands grey and palette images and composites alpha over white.
    return { ...decodePng(bytes), channels: 3 };
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    // RGB out for any component count (grey, YCbCr, CMYK); a truncated file throws.
    const { data, width, height } = decodeJpeg(bytes, { useTArray: true, formatAsRGBA: false });
    return { data, width, height, channels: 3 };
  }
  throw new Error('neither PNG nor JPEG');
}

// ---- resolving the source ----

function resolveSources(source: string): Source[] {
  const accept = (path: string) => classify(path) !== undefined;
  // expandSources has checked every path; directories are listed here, still before the first image is read.
  return expandSources(source, accept, { what: 'directory, .tar or image file', label: 'image source' }).map((path) => {
    const kind = classify(path);
    if (kind === 'dir') return { kind: 'files', files: imageFilesUnder(path) };
    if (kind === 'tar') return { kind: 'tar', path };
    return { kind: 'files', files: [{ name: path, path }] };
  });
}

/** What a path is to the reader; undefined when it is none of the supported kinds (or a dangling link). */
function classify(path: string): 'dir' | 'tar' | 'image' | undefined {
  if (isDirectory(path)) return 'dir';
  if (!isFile(path)) return undefined;
  if (TAR_NAME.test(path)) return 'tar';
  if (IMAGE_NAME.test(path)) return 'image';
  return undefined;
}

/** Image files anywhere under `dir`, sorted by relative path (code-unit order, so locale-independent). */
function imageFilesUnder(dir: string): Array<{ name: string; path: string }> {
  const names = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((rel) => IMAGE_NAME.test(rel) && isFile(join(dir, rel)))
    .sort();
  if (names.length === 0) throw new DataError(`no .png, .jpg or .jpeg files under ${dir}`);
  return names.map((name) => ({ name, path: join(dir, name) }));
}

// ---- reading ----

async function* looseFiles(files: Array<{ name: string; path: string }>, skip: Skip): AsyncGenerator<RawFile> {
  for (const { name, path } of files) {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch {
      skip('unreadable file');
      continue;
    }
    yield { name, bytes };
  }
}

/**
 * The image members of a tar: the shared tar index scan lists the members header by header (a damaged
 * archive is listed up to the damage, then counted once and left), and each image is read on its own
 * so a shard is never held in memory whole.
 */
async function* tarImageMembers(path: string, skipped: Record<string, number>): AsyncGenerator<RawFile> {
  for await (const member of scanTar(path, skipped)) {
    if (!IMAGE_NAME.test(member.name)) continue;
    let bytes: Uint8Array;
    try {
      bytes = await readRange({ path, offset: member.offset, size: member.size });
    } catch {
      countSkip(skipped, 'unreadable file');
      continue;
    }
    yield { name: member.name, bytes };
  }
}
