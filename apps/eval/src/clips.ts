import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DataError } from '@matryoshka-ts/core';
import { countSkip, isDirectory, isFile } from '@matryoshka-ts/data';
import type { Uint8Image } from '@matryoshka-ts/metrics';
import { type LevelSamples, clipGif } from '@matryoshka-ts/pipelines';
import { decodeImage, floatToUint8Image, writePng } from './images.js';

/**
 * Video samples as files, and reading them back for the metrics.
 *
 * `mdm-eval generate` on a video level writes each sample i as a clip under `<out>/clips/`:
 * `<id>/frame-000.png …` (lossless, what the metrics read) and `<id>.gif` (a preview), id = i as
 * six digits. `readClips` reads such a directory, any folder of clip folders (frame images in name
 * order) or a folder of GIFs (decoded by the small GIF decoder below).
 */

/** One clip: its frames as 8-bit RGB images (all the same size) and its id (folder or file name). */
export interface Clip {
  id: string;
  frames: Uint8Image[];
}

/** Why a clip was passed over; the keys of `ReadClipsOptions.skipped`. */
export type ClipSkipReason =
  | 'corrupt gif'
  | 'corrupt frame'
  | 'empty clip'
  | 'incomplete clip'
  | 'empty file'
  | 'unreadable file';

export interface ReadClipsOptions {
  /** Stop after this many clips. */
  limit?: number;
  /** Incremented per skipped clip, by reason (a `ClipSkipReason`). */
  skipped?: Record<string, number>;
}

// ---- writing (generate) ----

/** A sample's clip id: its index as six digits, like the image files. */
export const clipId = (i: number) => String(i).padStart(6, '0');
export const clipFolder = (dir: string, i: number) => join(dir, 'clips', clipId(i));
export const clipGifPath = (dir: string, i: number) => join(dir, 'clips', `${clipId(i)}.gif`);

/** Frame f of clip i: `frame-000.png` (three digits, more for clips of over 1,000 frames). */
export function framePath(dir: string, i: number, f: number, frames: number): string {
  const digits = Math.max(3, String(frames - 1).length);
  return join(clipFolder(dir, i), `frame-${String(f).padStart(digits, '0')}.png`);
}

/** True when clip i is whole: all `frames` frame PNGs and the GIF exist (the GIF is written last). */
export function clipComplete(dir: string, i: number, frames: number): boolean {
  if (!existsSync(clipGifPath(dir, i))) return false;
  for (let f = 0; f < frames; f++) if (!existsSync(framePath(dir, i, f, frames))) return false;
  return true;
}

/**
 * Writes `level`'s samples as clips `first`, `first` + 1, … of `dir`: each frame as a lossless PNG,
 * then the GIF (`clipGif`, `fps` default 8). Every file is written atomically and the GIF last, so
 * `clipComplete` is true only for a clip whose every file is there.
 */
export function writeClips(dir: string, level: LevelSamples, first: number, options: { fps?: number } = {}): string[] {
  const { resolution: r, channels, frames } = level;
  const size = r * r * channels;
  return level.images.map((values, k) => {
    const i = first + k;
    if (values.length !== frames * size)
      throw new Error(
        `writeClips: sample ${k} has ${values.length} values for ${frames} frames of ${r}×${r}×${channels}`,
      );
    mkdirSync(clipFolder(dir, i), { recursive: true });
    for (let f = 0; f < frames; f++)
      writePng(framePath(dir, i, f, frames), floatToUint8Image(values.subarray(f * size, (f + 1) * size), r, channels));
    const gif = clipGifPath(dir, i);
    const tmp = `${gif}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, clipGif(level, k, { fps: options.fps }));
      renameSync(tmp, gif);
    } catch (error) {
      rmSync(tmp, { force: true });
      throw error;
    }
    return clipFolder(dir, i);
  });
}

// ---- reading ----

const IMAGE_NAME = /\.(png|jpe?g)$/i;
const GIF_NAME = /\.gif$/i;

/** A clip to read: a folder of frame files, or a GIF. */
type ClipEntry = { id: string; kind: 'folder'; frames: string[] } | { id: string; kind: 'gif'; path: string };

/**
 * Whether `source` holds clips rather than images, by its layout alone: a `.gif` file, a directory
 * with a `clips/` folder (what `generate` writes for a video level), or a directory with GIFs and no
 * PNG/JPEG files at its top level. A folder of clip folders looks like a folder of image folders:
 * the commands take `--frames` for it.
 */
export function isClipSource(source: string): boolean {
  if (isFile(source)) return GIF_NAME.test(source);
  if (!isDirectory(source)) return false;
  if (isDirectory(join(source, 'clips'))) return true;
  const names = readdirSync(source);
  return names.some((n) => GIF_NAME.test(n)) && !names.some((n) => IMAGE_NAME.test(n));
}

/** The frame count a `generate` samples directory's manifest records, if `source` is one. */
function manifestFrames(source: string): number | undefined {
  const path = join(source, 'manifest.json');
  if (!isFile(path)) return undefined;
  try {
    const frames = (JSON.parse(readFileSync(path, 'utf8')) as { frames?: unknown }).frames;
    return typeof frames === 'number' ? frames : undefined;
  } catch {
    return undefined;
  }
}

/** Every clip of `source`, listed before the first is read (so a bad source throws at once). */
function resolveClips(source: string): { entries: ClipEntry[]; frames?: number } {
  if (!existsSync(source)) throw new DataError(`clip source ${source}: no such file or directory`);
  if (isFile(source)) {
    if (!GIF_NAME.test(source)) throw new DataError(`clip source ${source}: not a .gif or a directory of clips`);
    return { entries: [{ id: basename(source).replace(GIF_NAME, ''), kind: 'gif', path: source }] };
  }
  const generated = isDirectory(join(source, 'clips'));
  if (!generated && isDirectory(join(source, 'images')) && isFile(join(source, 'manifest.json')))
    throw new DataError(`${source} holds image samples (images/), not clips: generate them from a video level`);
  const root = generated ? join(source, 'clips') : source;
  const folders = new Map<string, string[]>();
  const gifs = new Map<string, string>();
  for (const name of readdirSync(root).sort()) {
    const path = join(root, name);
    if (isDirectory(path))
      folders.set(
        name,
        readdirSync(path)
          .filter((f) => IMAGE_NAME.test(f) && isFile(join(path, f)))
          .sort()
          .map((f) => join(path, f)),
      );
    else if (GIF_NAME.test(name) && isFile(path)) gifs.set(name.replace(GIF_NAME, ''), path);
  }
  // A clip folder and a GIF of the same id are one clip (generate writes both): the lossless frames win.
  const ids = [...new Set([...folders.keys(), ...gifs.keys()])].sort();
  if (!ids.length)
    throw new DataError(`no clips under ${root}: expected folders of frame images (PNG/JPEG) or .gif files`);
  const entries = ids.map((id): ClipEntry => {
    const frames = folders.get(id);
    return frames ? { id, kind: 'folder', frames } : { id, kind: 'gif', path: gifs.get(id)! };
  });
  return { entries, frames: generated ? manifestFrames(source) : undefined };
}

async function bytesOf(path: string, skip: (reason: ClipSkipReason) => void): Promise<Uint8Array | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch {
    return void skip('unreadable file');
  }
  if (bytes.length === 0) return void skip('empty file');
  return bytes;
}

/** A clip folder's frames, or undefined (counted) when any frame is bad or the sizes differ. */
async function folderFrames(paths: string[], skip: (reason: ClipSkipReason) => void) {
  if (!paths.length) return void skip('empty clip');
  const frames: Uint8Image[] = [];
  for (const path of paths) {
    const bytes = await bytesOf(path, skip);
    if (!bytes) return undefined;
    let frame: Uint8Image;
    try {
      frame = decodeImage(bytes);
    } catch {
      return void skip('corrupt frame');
    }
    if (frames.length && (frame.width !== frames[0].width || frame.height !== frames[0].height))
      return void skip('corrupt frame');
    frames.push(frame);
  }
  return frames;
}

/**
 * Reads clips, frames decoded to 8-bit RGB, in id order. `source` is a directory of clip folders
 * (each with frame PNG/JPEGs, read in name order), a directory of `.gif` files, a mix of both, a
 * `generate` samples directory (its `clips/`; a clip folder with a GIF of the same id is read from
 * its PNGs, and clips without the manifest's frame count are passed over as incomplete) or one
 * `.gif`. Bad clips never stop the read: they are counted in `options.skipped` and passed over.
 */
export async function* readClips(source: string, options: ReadClipsOptions = {}): AsyncGenerator<Clip> {
  const { limit = Infinity } = options;
  if (!(limit >= 0)) throw new Error(`limit must be a non-negative number, got ${limit}`);
  const { entries, frames: expected } = resolveClips(source);
  const skipped = options.skipped ?? {};
  const skip = (reason: ClipSkipReason) => countSkip(skipped, reason);
  let count = 0;
  for (const entry of entries) {
    if (count >= limit) return;
    let frames: Uint8Image[] | undefined;
    if (entry.kind === 'folder') {
      if (expected !== undefined && entry.frames.length !== expected) {
        skip('incomplete clip');
        continue;
      }
      frames = await folderFrames(entry.frames, skip);
    } else {
      const bytes = await bytesOf(entry.path, skip);
      if (!bytes) continue;
      try {
        frames = decodeGif(bytes).frames;
      } catch {
        skip('corrupt gif');
        continue;
      }
      if (!frames.length) skip('corrupt gif');
    }
    if (!frames?.length) continue;
    yield { id: entry.id, frames };
    count++;
  }
}

// ---- GIF decoding ----

export interface DecodedGif {
  /** The logical screen: every frame is this size. */
  width: number;
  height: number;
  /** Each frame composited onto the screen as a browser shows it, 8-bit RGB. */
  frames: Uint8Image[];
  /** Per frame, the delay in hundredths of a second (0 when there is no graphic control extension). */
  delays: number[];
}

class GifReader {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}
  byte(): number {
    if (this.at >= this.bytes.length) throw new Error('GIF: unexpected end of data');
    return this.bytes[this.at++];
  }
  u16(): number {
    return this.byte() | (this.byte() << 8);
  }
  take(n: number): Uint8Array {
    if (this.at + n > this.bytes.length) throw new Error('GIF: unexpected end of data');
    this.at += n;
    return this.bytes.subarray(this.at - n, this.at);
  }
  /** A run of data sub-blocks (length byte, bytes …, ended by a zero length), concatenated. */
  subBlocks(): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let n = this.byte(); n !== 0; n = this.byte()) {
      parts.push(this.take(n));
      total += n;
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/**
 * GIF's variable-length LZW: codes of minCodeSize + 1 … 12 bits, least significant bit first, with
 * clear and end codes; the table stops growing at 4,096 entries until the next clear. Decodes
 * exactly `pixels` indices and throws on a code that cannot occur or on too little data.
 */
export function lzwDecode(minCodeSize: number, data: Uint8Array, pixels: number): Uint8Array {
  if (!(minCodeSize >= 1 && minCodeSize <= 11)) throw new Error(`GIF: bad LZW minimum code size ${minCodeSize}`);
  const clear = 1 << minCodeSize;
  const end = clear + 1;
  const prefix = new Int16Array(4096);
  const suffix = new Uint8Array(4096);
  const first = new Uint8Array(4096);
  const length = new Uint16Array(4096);
  for (let c = 0; c < clear; c++) {
    suffix[c] = c;
    first[c] = c;
    length[c] = 1;
  }
  const out = new Uint8Array(pixels);
  let pos = 0;
  let size = minCodeSize + 1;
  let next = end + 1;
  let previous = -1;
  let bits = 0;
  let buffer = 0;
  let i = 0;
  /** Writes code's string at pos (backwards from its end, following prefixes). */
  const emit = (code: number): void => {
    const n = length[code];
    if (pos + n > pixels) throw new Error('GIF: more pixel data than the image holds');
    for (let c = code, k = pos + n - 1; k >= pos; k--, c = prefix[c]) out[k] = suffix[c];
    pos += n;
  };
  for (;;) {
    while (bits < size) {
      if (i >= data.length) throw new Error('GIF: image data ends without an end code');
      buffer |= data[i++] << bits;
      bits += 8;
    }
    const code = buffer & ((1 << size) - 1);
    buffer >>>= size;
    bits -= size;
    if (code === clear) {
      size = minCodeSize + 1;
      next = end + 1;
      previous = -1;
      continue;
    }
    if (code === end) break;
    if (previous < 0) {
      if (code > clear) throw new Error(`GIF: code ${code} before any string`);
      emit(code);
    } else if (code < next) {
      emit(code);
      if (next < 4096) {
        prefix[next] = previous;
        suffix[next] = first[code];
        first[next] = first[previous];
        length[next] = length[previous] + 1;
        next++;
      }
    } else if (code === next && next < 4096) {
      prefix[next] = previous;
      suffix[next] = first[previous];
      first[next] = first[previous];
      length[next] = length[previous] + 1;
      next++;
      emit(code);
    } else throw new Error(`GIF: code ${code} is not in the table (${next} entries)`);
    if (next === 1 << size && size < 12) size++;
    previous = code;
    if (pos === pixels) break; // some encoders leave out the end code once the image is full
  }
  if (pos < pixels) throw new Error(`GIF: ${pos} of ${pixels} pixels in the image data`);
  return out;
}

/** Row order of an interlaced image: rows 0, 8, 16 …, then 4, 12 …, then 2, 6 …, then 1, 3 …. */
function interlacedRows(height: number): number[] {
  const rows: number[] = [];
  for (const [start, step] of [
    [0, 8],
    [4, 8],
    [2, 4],
    [1, 2],
  ])
    for (let y = start; y < height; y += step) rows.push(y);
  return rows;
}

/**
 * Decodes an animated (or still) GIF: global and local colour tables, interlacing, transparency and
 * the disposal methods (keep, restore to background, restore to previous). The screen starts as the
 * background colour (black without a global table); frames are snapshots of it after each image.
 * Throws on anything malformed, including data that ends before the trailer mid-block.
 */
export function decodeGif(bytes: Uint8Array): DecodedGif {
  const r = new GifReader(bytes);
  const signature = String.fromCharCode(...r.take(6));
  if (signature !== 'GIF87a' && signature !== 'GIF89a') throw new Error('GIF: bad signature');
  const width = r.u16();
  const height = r.u16();
  if (!width || !height) throw new Error(`GIF: empty screen ${width}×${height}`);
  const packed = r.byte();
  const background = r.byte();
  r.byte(); // pixel aspect ratio
  const global = packed & 0x80 ? r.take(3 << ((packed & 7) + 1)) : undefined;
  const screen = new Uint8Array(width * height * 3);
  if (global && background * 3 + 2 < global.length)
    for (let p = 0; p < width * height; p++) screen.set(global.subarray(background * 3, background * 3 + 3), p * 3);
  const backdrop = screen.slice();
  const frames: Uint8Image[] = [];
  const delays: number[] = [];
  let control = { disposal: 0, transparent: -1, delay: 0 };
  for (;;) {
    if (r.at === bytes.length && frames.length) break; // no trailer after a whole frame: accepted
    const block = r.byte();
    if (block === 0x3b) break;
    if (block === 0x21) {
      const label = r.byte();
      const body = r.subBlocks();
      if (label === 0xf9) {
        if (body.length < 4) throw new Error('GIF: short graphic control extension');
        control = {
          disposal: (body[0] >> 2) & 7,
          transparent: body[0] & 1 ? body[3] : -1,
          delay: body[1] | (body[2] << 8),
        };
      }
      continue;
    }
    if (block !== 0x2c) throw new Error(`GIF: unknown block 0x${block.toString(16)}`);
    const left = r.u16();
    const top = r.u16();
    const w = r.u16();
    const h = r.u16();
    const flags = r.byte();
    const table = flags & 0x80 ? r.take(3 << ((flags & 7) + 1)) : global;
    if (!table) throw new Error('GIF: an image without a colour table');
    const indices = lzwDecode(r.byte(), r.subBlocks(), w * h);
    const saved = control.disposal === 3 ? screen.slice() : undefined;
    const rows = flags & 0x40 ? interlacedRows(h) : Array.from({ length: h }, (_, y) => y);
    rows.forEach((y, row) => {
      const sy = top + y;
      if (sy >= height) return;
      for (let x = 0; x < w && left + x < width; x++) {
        const index = indices[row * w + x];
        if (index === control.transparent) continue;
        if (index * 3 + 2 >= table.length)
          throw new Error(`GIF: colour ${index} beyond a table of ${table.length / 3}`);
        screen.set(table.subarray(index * 3, index * 3 + 3), (sy * width + left + x) * 3);
      }
    });
    frames.push({ data: screen.slice(), width, height, channels: 3 });
    delays.push(control.delay);
    if (control.disposal === 2) {
      for (let y = top; y < Math.min(height, top + h); y++) {
        const from = (y * width + left) * 3;
        const to = (y * width + Math.min(width, left + w)) * 3;
        screen.set(backdrop.subarray(from, to), from);
      }
    } else if (saved) screen.set(saved);
    control = { disposal: 0, transparent: -1, delay: 0 };
  }
  return { width, height, frames, delays };
}
