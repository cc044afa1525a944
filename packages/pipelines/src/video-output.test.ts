import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkFfmpeg, decodePng } from '@matryoshka-ts/data';
import type { LevelSamples } from './generate.js';
import { clipGif, contactSheetPng, writeVideoSamples } from './video-output.js';

const R = 8;
const FRAMES = 4;
/** Sample 0: a white 2×2 square on black; sample 1: a red one on grey. */
const SQUARE = [
  [1, 1, 1],
  [1, -1, -1],
];
const BACKGROUND = [
  [-1, -1, -1],
  [0, 0, 0],
];

/** Whether pixel (x, y) of frame f lies in the square, which moves one pixel right per frame. */
function inSquare(f: number, x: number, y: number): boolean {
  return x >= 1 + f && x < 3 + f && y >= 3 && y < 5;
}

/** 2 samples × 4 frames × 8×8 RGB: the clip (level 0), and its first frame at 4 px (level 1). */
function levels(): LevelSamples[] {
  const clip = [0, 1].map((k) => {
    const values = new Float32Array(FRAMES * R * R * 3);
    for (let f = 0; f < FRAMES; f++)
      for (let y = 0; y < R; y++)
        for (let x = 0; x < R; x++)
          values.set(inSquare(f, x, y) ? SQUARE[k] : BACKGROUND[k], ((f * R + y) * R + x) * 3);
    return values;
  });
  // Level 1: a 4×4 first frame; its pixel (1, 1) (level-0 pixels 2–3, 2–3) marks the square's area.
  const first = [0, 1].map((k) => {
    const values = new Float32Array(4 * 4 * 3);
    for (let p = 0; p < 16; p++) values.set(p === 5 ? SQUARE[k] : BACKGROUND[k], p * 3);
    return values;
  });
  return [
    { resolution: R, channels: 3, frames: FRAMES, images: clip },
    { resolution: 4, channels: 3, frames: 1, images: first },
  ];
}

/** A colour in [−1, 1] as the bytes the writers produce. */
const bytes = (rgb: number[]): number[] => rgb.map((v) => Math.round((v + 1) * 127.5));

interface GifFrame {
  width: number;
  height: number;
  /** Delay in hundredths of a second (from the graphic control extension). */
  delay: number;
  /** RGB bytes, [height, width, 3]. */
  rgb: Uint8Array;
}

interface Gif {
  width: number;
  height: number;
  loops: boolean;
  frames: GifFrame[];
}

/** GIF LZW: variable-width codes, least significant bit first, with clear and end codes. */
function lzwDecode(minCodeSize: number, data: Uint8Array, pixels: number): Uint8Array {
  const clear = 1 << minCodeSize;
  const end = clear + 1;
  let table: number[][] = [];
  let codeSize = 0;
  const reset = (): void => {
    table = Array.from({ length: clear }, (_, i) => [i]);
    table.push([], []); // the clear and end codes
    codeSize = minCodeSize + 1;
  };
  reset();
  const out: number[] = [];
  let previous: number[] | null = null;
  let bit = 0;
  while (bit + codeSize <= data.length * 8) {
    let code = 0;
    for (let i = 0; i < codeSize; i++, bit++) code |= ((data[bit >> 3] >> (bit & 7)) & 1) << i;
    if (code === clear) {
      reset();
      previous = null;
      continue;
    }
    if (code === end) break;
    let entry: number[];
    if (code < table.length) entry = table[code];
    else if (code === table.length && previous) entry = [...previous, previous[0]];
    else throw new Error(`bad LZW code ${code}`);
    out.push(...entry);
    if (previous && table.length < 4096) {
      table.push([...previous, entry[0]]);
      if (table.length === 1 << codeSize && codeSize < 12) codeSize++;
    }
    previous = entry;
  }
  if (out.length < pixels) throw new Error(`LZW data holds ${out.length} pixels, expected ${pixels}`);
  return Uint8Array.from(out.slice(0, pixels));
}

/** Decodes a GIF by walking its blocks: header, screen descriptor, colour tables, extensions, images. */
function decodeGif(gif: Uint8Array): Gif {
  let at = 0;
  const u8 = (): number => gif[at++];
  /** The next n bytes. */
  const take = (n: number): Uint8Array => {
    at += n;
    return gif.subarray(at - n, at);
  };
  const u16 = (): number => u8() | (u8() << 8);
  const text = (n: number): string => String.fromCharCode(...take(n));
  const subBlocks = (): Uint8Array => {
    const parts: number[] = [];
    for (let size = u8(); size > 0; size = u8()) parts.push(...take(size));
    return Uint8Array.from(parts);
  };
  const colourTable = (packed: number): Uint8Array | null =>
    packed & 0x80 ? take(3 * (1 << ((packed & 7) + 1))) : null;

  const signature = text(6);
  if (signature !== 'GIF89a') throw new Error(`not a GIF89a: ${signature}`);
  const width = u16();
  const height = u16();
  const screenPacked = u8();
  at += 2; // background colour index, pixel aspect ratio
  const global = colourTable(screenPacked);
  const result: Gif = { width, height, loops: false, frames: [] };
  let delay = 0;
  for (;;) {
    const block = u8();
    if (block === 0x3b) break; // trailer
    if (block === 0x21) {
      const label = u8();
      const data = subBlocks();
      if (label === 0xf9) delay = data[1] | (data[2] << 8);
      // Application extension: its first sub-block is the 11-byte identifier.
      if (label === 0xff && String.fromCharCode(...data.subarray(0, 11)) === 'NETSCAPE2.0') result.loops = true;
    } else if (block === 0x2c) {
      at += 4; // left, top
      const w = u16();
      const h = u16();
      const packed = u8();
      if (packed & 0x40) throw new Error('interlaced frames are not expected');
      const table = colourTable(packed) ?? global;
      if (!table) throw new Error('a frame without a colour table');
      const minCodeSize = u8();
      const index = lzwDecode(minCodeSize, subBlocks(), w * h);
      const rgb = new Uint8Array(w * h * 3);
      index.forEach((i, p) => rgb.set(table.subarray(i * 3, i * 3 + 3), p * 3));
      result.frames.push({ width: w, height: h, delay, rgb });
    } else throw new Error(`unknown GIF block 0x${block.toString(16)} at byte ${at - 1}`);
  }
  return result;
}

/** Pixel (x, y) of an RGB image `width` wide. */
function pixelOf(rgb: Uint8Array, width: number, x: number, y: number): number[] {
  const at = (y * width + x) * 3;
  return Array.from(rgb.subarray(at, at + 3));
}

function expectClose(got: number[], want: number[], tolerance: number): void {
  for (let c = 0; c < 3; c++) expect(Math.abs(got[c] - want[c])).toBeLessThanOrEqual(tolerance);
}

describe('clipGif', () => {
  it('writes a looping GIF89a with one image per frame', () => {
    const gif = clipGif(levels()[0], 0);
    expect(String.fromCharCode(...gif.subarray(0, 6))).toBe('GIF89a');
    const decoded = decodeGif(gif);
    expect(decoded.loops).toBe(true);
    expect(decoded.frames).toHaveLength(FRAMES);
    expect([decoded.width, decoded.height]).toEqual([128, 128]); // 8 px upscaled 16× by default
    expect(decoded.frames.map((f) => f.delay)).toEqual([13, 13, 13, 13]); // 8 fps: 125 ms
    expect(decodeGif(clipGif(levels()[0], 0, { fps: 10 })).frames[0].delay).toBe(10);
  });

  it('decodes back to the source colours, the square moving between frames', () => {
    for (const k of [0, 1]) {
      const decoded = decodeGif(clipGif(levels()[0], k, { scale: 1 }));
      expect([decoded.width, decoded.height]).toEqual([R, R]);
      decoded.frames.forEach((frame, f) => {
        for (let y = 0; y < R; y++)
          for (let x = 0; x < R; x++)
            expectClose(pixelOf(frame.rgb, R, x, y), bytes(inSquare(f, x, y) ? SQUARE[k] : BACKGROUND[k]), 4);
      });
      // Where the square moved, consecutive frames differ; the square's trailing column is background again.
      for (let f = 1; f < FRAMES; f++) {
        const [before, after] = [decoded.frames[f - 1].rgb, decoded.frames[f].rgb];
        expect(pixelOf(before, R, f, 3)).not.toEqual(pixelOf(after, R, f, 3));
        expect(pixelOf(before, R, f + 2, 3)).not.toEqual(pixelOf(after, R, f + 2, 3));
        expect(pixelOf(before, R, 0, 0)).toEqual(pixelOf(after, R, 0, 0));
      }
    }
  });

  it('upscales nearest by an integer scale', () => {
    const decoded = decodeGif(clipGif(levels()[0], 0, { scale: 3 }));
    expect([decoded.width, decoded.height]).toEqual([24, 24]);
    const frame = decoded.frames[2]; // square at x 3–4, y 3–4 → 9–14
    for (const [x, y, inside] of [
      [9, 9, true],
      [14, 14, true],
      [8, 9, false],
      [15, 14, false],
    ] as const)
      expectClose(pixelOf(frame.rgb, 24, x, y), bytes(inside ? SQUARE[0] : BACKGROUND[0]), 4);
  });

  it('repeats a grey channel', () => {
    const grey: LevelSamples = {
      resolution: 2,
      channels: 1,
      frames: 2,
      images: [Float32Array.from([-1, 1, 1, -1, 0, 0, 0, 0])],
    };
    const decoded = decodeGif(clipGif(grey, 0, { scale: 1 }));
    expectClose(pixelOf(decoded.frames[0].rgb, 2, 1, 0), [255, 255, 255], 4);
    expectClose(pixelOf(decoded.frames[1].rgb, 2, 0, 0), [128, 128, 128], 4);
  });

  it('refuses a sample out of range and a fractional scale', () => {
    expect(() => clipGif(levels()[0], 2)).toThrow(/sample 2 is out of range/);
    expect(() => clipGif(levels()[0], 0, { scale: 1.5 })).toThrow(/scale must be a positive integer/);
  });
});

describe('contactSheetPng', () => {
  it('puts a row per sample: the clip’s frames, a wider gap, then the first-frame level upscaled', () => {
    const image = decodePng(contactSheetPng(levels()));
    // 2 + 4 frames × (8 + 2) − 2, the 8 px level gap, one 8 px frame, the 2 px border.
    expect([image.width, image.height]).toEqual([2 + 4 * 10 - 2 + 8 + 8 + 2, 2 + 2 * 10]);
    const at = (x: number, y: number): number[] => pixelOf(image.data, image.width, x, y);
    for (const k of [0, 1]) {
      const top = 2 + k * 10;
      for (let f = 0; f < FRAMES; f++) {
        const left = 2 + f * 10;
        for (let y = 0; y < R; y++)
          for (let x = 0; x < R; x++)
            expect(at(left + x, top + y)).toEqual(bytes(inSquare(f, x, y) ? SQUARE[k] : BACKGROUND[k]));
      }
      // Level 1 starts at 48: its 4 px pixel (1, 1) covers level-0 pixels 2–3 × 2–3.
      expect(at(48 + 2, top + 2)).toEqual(bytes(SQUARE[k]));
      expect(at(48 + 3, top + 3)).toEqual(bytes(SQUARE[k]));
      expect(at(48 + 4, top + 3)).toEqual(bytes(BACKGROUND[k]));
      expect(at(48 + 7, top + 7)).toEqual(bytes(BACKGROUND[k]));
    }
    for (const [x, y] of [
      [0, 0],
      [42, 5], // the level gap
      [47, 5],
      [57, 21],
      [5, 11], // between the rows
    ])
      expect(at(x, y)).toEqual([255, 255, 255]);
  });

  it('refuses levels with different sample counts', () => {
    const [clip, first] = levels();
    expect(() => contactSheetPng([clip, { ...first, images: first.images.slice(1) }])).toThrow(/holds 1 samples/);
  });
});

describe('writeVideoSamples', () => {
  const dirs: string[] = [];
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'mdm-video-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('writes a GIF per sample and the contact sheet, and says why MP4s are skipped without ffmpeg', async () => {
    const dir = tempDir();
    const out = await writeVideoSamples(join(dir, 'samples'), levels(), { ffmpeg: join(dir, 'no-ffmpeg-here') });
    expect(out.gifs).toEqual([0, 1].map((k) => join(dir, 'samples', `sample-${k}.gif`)));
    expect(out.contactSheet).toBe(join(dir, 'samples', 'contact-sheet.png'));
    expect(out.mp4s).toEqual([]);
    expect(out.mp4Skipped).toMatch(/^no MP4s: ffmpeg not found[^\n]*$/);
    for (const path of [...out.gifs, out.contactSheet]) expect(existsSync(path)).toBe(true);
    expect(decodeGif(readFileSync(out.gifs[1])).frames).toHaveLength(FRAMES);
    expect(readdirSync(join(dir, 'samples')).sort()).toEqual(['contact-sheet.png', 'sample-0.gif', 'sample-1.gif']);
  });

  it('writes MP4s where ffmpeg runs (else says why not), with the prefix', async () => {
    const dir = tempDir();
    let ffmpeg = true;
    try {
      checkFfmpeg();
    } catch {
      ffmpeg = false;
    }
    const out = await writeVideoSamples(dir, levels(), { prefix: 'clip', fps: 4 });
    expect(out.gifs).toEqual([0, 1].map((k) => join(dir, `clip-${k}.gif`)));
    if (ffmpeg) {
      expect(out.mp4Skipped).toBeUndefined();
      expect(out.mp4s).toEqual([0, 1].map((k) => join(dir, `clip-${k}.mp4`)));
      for (const path of out.mp4s) {
        const mp4 = readFileSync(path);
        expect(mp4.subarray(4, 8).toString('latin1')).toBe('ftyp'); // the first box
      }
    } else {
      expect(out.mp4s).toEqual([]);
      expect(out.mp4Skipped).toMatch(/ffmpeg not found/);
    }
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('skips MP4s when told to', async () => {
    const out = await writeVideoSamples(tempDir(), levels(), { mp4: false });
    expect(out.mp4s).toEqual([]);
    expect(out.mp4Skipped).toMatch(/turned off/);
  });

  it('refuses a level 0 of one frame', async () => {
    const [, first] = levels();
    await expect(writeVideoSamples(tempDir(), [first])).rejects.toThrow(/not a video level/);
  });
});
