import { existsSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type FileHandle, open, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decodePng } from '@matryoshka-ts/data';
import type { Uint8Image } from '@matryoshka-ts/metrics';
import { decode as decodeJpeg } from 'jpeg-js';
import { type ColorType, PNG } from 'pngjs';

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
  const { limit = Infinity, skipped } = options;
  if (!(limit >= 0)) throw new Error(`limit must be a non-negative number, got ${limit}`);
  const sources = resolveSources(source);
  if (limit === 0) return;
  const skip: Skip = (reason) => {
    if (skipped) skipped[reason] = (skipped[reason] ?? 0) + 1;
  };
  let count = 0;
  for (const piece of sources) {
    const files = piece.kind === 'tar' ? tarImageMembers(piece.path, skip) : looseFiles(piece.files, skip);
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
    throw new Error(`writePng: ${image.data.length} bytes for a ${image.width}×${image.height}×${image.channels} image`);
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

/** A size×size RGB model sample with values in [-1, 1] (HWC) as 8-bit pixels: round((x + 1) · 127.5), clamped. */
export function floatToUint8Image(data: Float32Array, size: number): Uint8Image {
  if (data.length !== size * size * 3) throw new Error(`floatToUint8Image: ${data.length} values for a ${size}×${size}×3 image`);
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Math.min(255, Math.max(0, Math.round((data[i] + 1) * 127.5)));
  return { data: out, width: size, height: size, channels: 3 };
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

/** Picks the decoder by signature rather than file name, so a mislabelled file still decodes. */
function decodeImage(bytes: Uint8Array): Uint8Image {
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
  const parts = splitOutsideBraces(source)
    .map((part) => part.trim())
    .filter((part) => part !== '');
  if (parts.length === 0) throw new Error(`no image source given: '${source}'`);
  return parts.flatMap(expandBraces).flatMap(resolvePath);
}

/** Splits at the commas that are not inside `{…}`, which belong to brace patterns. */
function splitOutsideBraces(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}') depth = Math.max(0, depth - 1);
    else if (text[i] === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** Expands every `{a..b}` (numeric, zero-padded like bash when an end is) and `{x,y}`, left to right. */
function expandBraces(pattern: string): string[] {
  const brace = /\{([^{}]*)\}/.exec(pattern);
  if (!brace) return [pattern];
  const head = pattern.slice(0, brace.index);
  const tail = pattern.slice(brace.index + brace[0].length);
  return braceAlternatives(brace[1], pattern).flatMap((alt) => expandBraces(head + alt + tail));
}

function braceAlternatives(body: string, pattern: string): string[] {
  const range = /^(\d+)\.\.(\d+)$/.exec(body);
  if (range) {
    const [from, to] = [Number(range[1]), Number(range[2])];
    const width = range[1].startsWith('0') || range[2].startsWith('0') ? Math.max(range[1].length, range[2].length) : 0;
    const step = from <= to ? 1 : -1;
    const out: string[] = [];
    for (let n = from; n !== to + step; n += step) out.push(String(n).padStart(width, '0'));
    return out;
  }
  if (body.includes(',')) return body.split(',');
  throw new Error(`unsupported brace expression '{${body}}' in ${pattern} (use {a..b} or {x,y})`);
}

function resolvePath(path: string): Source[] {
  if (basename(path).includes('*')) return resolveGlob(path);
  if (!existsSync(path)) throw new Error(`no such file or directory: ${path}`);
  const source = classify(path, path);
  if (!source) throw new Error(`not a directory, .tar, .png, .jpg or .jpeg file: ${path}`);
  return [source];
}

function resolveGlob(pattern: string): Source[] {
  const dir = dirname(pattern);
  if (dir.includes('*')) throw new Error(`'*' is only supported in the last path component: ${pattern}`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`no such directory: ${dir} (in ${pattern})`);
  const matcher = globRegExp(basename(pattern));
  const sources = readdirSync(dir)
    .filter((entry) => matcher.test(entry))
    .sort()
    .flatMap((entry) => classify(join(dir, entry), join(dir, entry)) ?? []);
  if (sources.length === 0) throw new Error(`pattern matches no directory, .tar or image file: ${pattern}`);
  return sources;
}

function globRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/\*/g, '.*')}$`);
}

/** What a path is to the reader; undefined when it is none of the supported kinds. */
function classify(path: string, name: string): Source | undefined {
  const stat = statSync(path, { throwIfNoEntry: false }); // undefined for a dangling link
  if (!stat) return undefined;
  if (stat.isDirectory()) return { kind: 'files', files: imageFilesUnder(path) };
  if (!stat.isFile()) return undefined;
  if (TAR_NAME.test(path)) return { kind: 'tar', path };
  if (IMAGE_NAME.test(path)) return { kind: 'files', files: [{ name, path }] };
  return undefined;
}

/** Image files anywhere under `dir`, sorted by relative path (code-unit order, so locale-independent). */
function imageFilesUnder(dir: string): Array<{ name: string; path: string }> {
  const names = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((rel) => IMAGE_NAME.test(rel) && statSync(join(dir, rel), { throwIfNoEntry: false })?.isFile())
    .sort();
  if (names.length === 0) throw new Error(`no .png, .jpg or .jpeg files under ${dir}`);
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

const BLOCK = 512;

/**
 * The image members of a tar, read header by header so a shard is never held in memory whole.
 * A damaged archive is read up to the damage, then counted once and left.
 */
async function* tarImageMembers(path: string, skip: Skip): AsyncGenerator<RawFile> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch {
    return skip('unreadable file');
  }
  try {
    const size = (await file.stat()).size;
    if (size === 0) return skip('empty file');
    let offset = 0;
    let nextName: string | undefined; // from a GNU 'L' or pax 'x' entry, for the member after it
    // Ending at a block boundary without the zero blocks is accepted, as Python's tarfile does.
    while (offset < size) {
      const header = await readAt(file, offset, BLOCK);
      if (header.length < BLOCK) return skip('truncated tar');
      if (header.every((b) => b === 0)) return; // tar writes two zero blocks; the first is enough
      const entry = parseTarHeader(header);
      if (!entry) return skip('corrupt tar');
      const start = offset + BLOCK;
      if (start + entry.size > size) return skip('truncated tar');
      offset = start + Math.ceil(entry.size / BLOCK) * BLOCK;

      if (entry.type === 'L') nextName = cString(await readAt(file, start, entry.size));
      else if (entry.type === 'x') nextName = paxPath(await readAt(file, start, entry.size)) ?? nextName;
      else if (entry.type === 'g') continue; // global pax headers never carry a member's own name
      else {
        const name = nextName ?? entry.name;
        nextName = undefined;
        if (entry.type === 'file' && IMAGE_NAME.test(name)) yield { name, bytes: await readAt(file, start, entry.size) };
      }
    }
  } finally {
    await file.close();
  }
}

async function readAt(file: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buffer.subarray(0, done);
}

interface TarEntry {
  name: string;
  size: number;
  /** 'file' for regular files; 'L' / 'x' / 'g' for name-bearing metadata; 'other' for the rest (dirs, links…). */
  type: 'file' | 'L' | 'x' | 'g' | 'other';
}

/** Parses a ustar/GNU header; undefined when the checksum or the size field is not valid. */
function parseTarHeader(header: Uint8Array): TarEntry | undefined {
  const checksum = parseOctal(header.subarray(148, 156));
  if (checksum === undefined || checksum !== headerChecksum(header)) return undefined;
  const size = parseSize(header.subarray(124, 136));
  if (size === undefined) return undefined;
  const flag = String.fromCharCode(header[156]);
  const type = flag === '0' || flag === '\0' || flag === '7' ? 'file' : flag === 'L' || flag === 'x' || flag === 'g' ? flag : 'other';
  // Only POSIX ustar ("ustar\0") has a prefix field; old GNU headers keep other data at that offset.
  const posix = cString(header.subarray(257, 263)) === 'ustar' && header[262] === 0;
  const prefix = posix ? cString(header.subarray(345, 500)) : '';
  const name = cString(header.subarray(0, 100));
  return { name: prefix ? `${prefix}/${name}` : name, size, type };
}

/** Sum of the header bytes with the checksum field counted as spaces. */
function headerChecksum(header: Uint8Array): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += header[i];
  return sum;
}

/** Octal (NUL/space padded), or GNU base-256 for members of 8 GiB and more. */
function parseSize(field: Uint8Array): number | undefined {
  if (!(field[0] & 0x80)) return parseOctal(field);
  let n = field[0] & 0x7f;
  for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
  return n;
}

function parseOctal(field: Uint8Array): number | undefined {
  const text = new TextDecoder('latin1').decode(field).replace(/[\0 ]+$/, '').trim();
  return /^[0-7]*$/.test(text) ? parseInt(text || '0', 8) : undefined;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** The `path` record of a pax extended header ("<length> path=<value>\n" records; lengths in bytes). */
function paxPath(data: Uint8Array): string | undefined {
  let path: string | undefined;
  for (let pos = 0; pos < data.length; ) {
    const space = data.indexOf(0x20, pos);
    const length = space < 0 ? NaN : Number(new TextDecoder().decode(data.subarray(pos, space)));
    if (!(length > 0)) break;
    const record = new TextDecoder().decode(data.subarray(space + 1, pos + length - 1));
    if (record.startsWith('path=')) path = record.slice(5);
    pos += length;
  }
  return path;
}
