import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Uint8Image } from '@matryoshka-ts/metrics';
import { type LevelSamples, clipGif } from '@matryoshka-ts/pipelines';
import { seeded } from '@matryoshka-ts/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Clip,
  clipComplete,
  clipFolder,
  clipGifPath,
  decodeGif,
  framePath,
  isClipSource,
  lzwDecode,
  readClips,
  writeClips,
} from './clips.js';
import { floatToUint8Image, writePng } from './images.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-eval-clips-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---- test data ----

const R = 8;
const FRAMES = 4;
/** 200 colours in 200 different rgb565 cells, so GIF quantisation keeps each one exactly. */
const COLOURS = Array.from({ length: 200 }, (_, j) => [
  (j % 8) * 32,
  (Math.floor(j / 8) % 5) * 60,
  Math.floor(j / 40) * 50,
]);

/** n clips of `frames` r×r RGB frames, each pixel one of COLOURS at random, as model values in [−1, 1]. */
function level(n: number, r = R, frames = FRAMES, seed = 1): LevelSamples {
  const random = seeded(seed);
  const images = Array.from({ length: n }, () => {
    const values = new Float32Array(frames * r * r * 3);
    for (let p = 0; p < frames * r * r; p++) {
      const colour = COLOURS[Math.floor(random() * COLOURS.length)];
      for (let c = 0; c < 3; c++) values[p * 3 + c] = colour[c] / 127.5 - 1;
    }
    return values;
  });
  return { resolution: r, channels: 3, frames, images };
}

/** Sample k's frame f as the 8-bit image the writers produce. */
function frameOf(l: LevelSamples, k: number, f: number): Uint8Image {
  const size = l.resolution * l.resolution * l.channels;
  return floatToUint8Image(l.images[k].subarray(f * size, (f + 1) * size), l.resolution, l.channels);
}

/** Standard GIF LZW (dictionary of strings, clear at 4,096 entries), codes packed LSB first. */
function lzwEncode(minCodeSize: number, indices: Uint8Array): Uint8Array {
  const clear = 1 << minCodeSize;
  const bytes: number[] = [];
  let buffer = 0;
  let bits = 0;
  let size = minCodeSize + 1;
  const put = (code: number) => {
    buffer |= code << bits;
    bits += size;
    while (bits >= 8) {
      bytes.push(buffer & 255);
      buffer >>>= 8;
      bits -= 8;
    }
  };
  let table = new Map<string, number>();
  let next = clear + 2;
  put(clear);
  let w = String(indices[0]);
  for (let i = 1; i < indices.length; i++) {
    const wk = `${w},${indices[i]}`;
    if (table.has(wk)) {
      w = wk;
      continue;
    }
    put(w.includes(',') ? table.get(w)! : Number(w));
    table.set(wk, next++);
    if (next - 1 === 1 << size && size < 12) size++;
    if (next === 4096) {
      put(clear);
      table = new Map();
      next = clear + 2;
      size = minCodeSize + 1;
    }
    w = String(indices[i]);
  }
  put(w.includes(',') ? table.get(w)! : Number(w));
  // The decoder adds its entry for that last code (one behind ours) and may widen before the end code.
  if (next === 1 << size && size < 12) size++;
  put(clear + 1);
  if (bits) bytes.push(buffer & 255);
  return Uint8Array.from(bytes);
}

interface TestFrame {
  left: number;
  top: number;
  width: number;
  height: number;
  /** Colour indices in display order (row by row). */
  indices: number[];
  local?: number[][];
  interlace?: boolean;
  transparent?: number;
  disposal?: number;
}

/** A GIF89a with a 4-colour global table (black, red, green, blue; background black) and these frames. */
function gif(width: number, height: number, frames: TestFrame[]): Uint8Array {
  const out: number[] = [...new TextEncoder().encode('GIF89a')];
  const u16 = (v: number) => out.push(v & 255, v >> 8);
  u16(width);
  u16(height);
  out.push(0x80 | 1, 0, 0); // global table of 4 colours, background 0
  out.push(0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255);
  for (const f of frames) {
    const packed = ((f.disposal ?? 0) << 2) | (f.transparent !== undefined ? 1 : 0);
    out.push(0x21, 0xf9, 4, packed, 10, 0, f.transparent ?? 0, 0);
    out.push(0x2c);
    for (const v of [f.left, f.top, f.width, f.height]) u16(v);
    out.push((f.local ? 0x80 | 0 : 0) | (f.interlace ? 0x40 : 0)); // a local table of 2 colours
    if (f.local) out.push(...f.local.flat());
    let rows = Array.from({ length: f.height }, (_, y) => y);
    if (f.interlace)
      rows = [
        [0, 8],
        [4, 8],
        [2, 4],
        [1, 2],
      ].flatMap(([start, step]) => range(start, f.height, step));
    const stored = rows.flatMap((y) => f.indices.slice(y * f.width, (y + 1) * f.width));
    const data = lzwEncode(2, Uint8Array.from(stored));
    out.push(2);
    for (let i = 0; i < data.length; i += 255) out.push(Math.min(255, data.length - i), ...data.subarray(i, i + 255));
    out.push(0);
  }
  out.push(0x3b);
  return Uint8Array.from(out);
}

const range = (start: number, end: number, step: number) =>
  Array.from({ length: Math.max(0, Math.ceil((end - start) / step)) }, (_, i) => start + i * step);

const pixel = (image: Uint8Image, x: number, y: number) =>
  Array.from(image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3));

async function readAll(source: string, skipped: Record<string, number> = {}): Promise<Clip[]> {
  const out: Clip[] = [];
  for await (const clip of readClips(source, { skipped })) out.push(clip);
  return out;
}

// ---- tests ----

describe('decodeGif', () => {
  it('decodes clipGif output back to the exact frames (palette colours kept), at any scale', () => {
    const l = level(2, 16, 3);
    for (const k of [0, 1]) {
      const decoded = decodeGif(clipGif(l, k, { scale: 1, fps: 10 }));
      expect([decoded.width, decoded.height, decoded.frames.length]).toEqual([16, 16, 3]);
      expect(decoded.delays).toEqual([10, 10, 10]);
      decoded.frames.forEach((frame, f) => expect(frame).toEqual(frameOf(l, k, f)));
    }
    // The default upscale (8 px → 128 px, nearest): pixel (x, y) is source pixel (x/16, y/16).
    const big = decodeGif(clipGif(level(1), 0));
    expect([big.width, big.height]).toEqual([128, 128]);
    const source = frameOf(level(1), 0, 2);
    for (const [x, y] of [
      [0, 0],
      [17, 40],
      [127, 127],
    ])
      expect(pixel(big.frames[2], x, y)).toEqual(pixel(source, x >> 4, y >> 4));
  });

  it('LZW: round trip of long data through a full table, clears and 12-bit codes', () => {
    const random = seeded(3);
    for (const [min, n, symbols] of [
      [8, 40_000, 256],
      [2, 5_000, 4],
      [8, 20_000, 3],
    ]) {
      const indices = Uint8Array.from({ length: n }, () => Math.floor(random() * symbols));
      expect(lzwDecode(min, lzwEncode(min, indices), n)).toEqual(indices);
    }
    const data = lzwEncode(2, Uint8Array.from([1, 2, 3, 0]));
    expect(() => lzwDecode(2, data, 5)).toThrow(/4 of 5 pixels/);
    expect(() => lzwDecode(2, data.subarray(0, 1), 4)).toThrow(/ends without an end code/);
  });

  it('composites frames: interlacing, a local table, transparency and each disposal method', () => {
    const bytes = gif(4, 3, [
      // Full screen, interlaced, disposal 1 (keep): rows 0 red, 1 green, 2 blue.
      {
        left: 0,
        top: 0,
        width: 4,
        height: 3,
        indices: [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3],
        interlace: true,
        disposal: 1,
      },
      // 2×2 at (1, 1), local white/yellow, yellow transparent, disposal 2 (back to the background).
      {
        left: 1,
        top: 1,
        width: 2,
        height: 2,
        indices: [0, 1, 1, 0],
        local: [
          [255, 255, 255],
          [255, 255, 0],
        ],
        transparent: 1,
        disposal: 2,
      },
      // One blue pixel at (0, 0), disposal 3 (restore what was there before).
      { left: 0, top: 0, width: 1, height: 1, indices: [3], disposal: 3 },
      { left: 3, top: 2, width: 1, height: 1, indices: [1] },
    ]);
    const { frames, width, height } = decodeGif(bytes);
    expect([width, height, frames.length]).toEqual([4, 3, 4]);
    const [red, green, blue, black, white] = [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [0, 0, 0],
      [255, 255, 255],
    ];
    expect([0, 1, 2].map((y) => pixel(frames[0], 0, y))).toEqual([red, green, blue]);
    expect(pixel(frames[1], 1, 1)).toEqual(white);
    expect(pixel(frames[1], 2, 1)).toEqual(green); // transparent: the frame below shows
    expect(pixel(frames[1], 1, 2)).toEqual(blue);
    expect(pixel(frames[1], 2, 2)).toEqual(white);
    expect(pixel(frames[2], 0, 0)).toEqual(blue);
    expect(pixel(frames[2], 1, 1)).toEqual(black); // frame 1's area went back to the background
    expect(pixel(frames[2], 3, 1)).toEqual(green);
    expect(pixel(frames[3], 0, 0)).toEqual(red); // restored to before frame 2
    expect(pixel(frames[3], 3, 2)).toEqual(red);
  });

  it('throws on bad signatures and truncated data', () => {
    const good = clipGif(level(1), 0, { scale: 1 });
    expect(() => decodeGif(new TextEncoder().encode('not a gif at all'))).toThrow(/bad signature/);
    for (const cut of [8, 20, good.length >> 1, good.length - 40])
      expect(() => decodeGif(good.subarray(0, cut))).toThrow();
  });
});

describe('writeClips', () => {
  const out = join(dir, 'samples');
  const l = level(3);

  it('writes each sample as frame PNGs and a GIF, named by its index', () => {
    const written = writeClips(out, l, 5, { fps: 4 });
    expect(written).toEqual([5, 6, 7].map((i) => clipFolder(out, i)));
    expect(readdirSync(join(out, 'clips')).sort()).toEqual([
      '000005',
      '000005.gif',
      '000006',
      '000006.gif',
      '000007',
      '000007.gif',
    ]);
    expect(readdirSync(clipFolder(out, 6))).toEqual([
      'frame-000.png',
      'frame-001.png',
      'frame-002.png',
      'frame-003.png',
    ]);
    expect(decodeGif(readFileSync(clipGifPath(out, 6))).delays).toEqual([25, 25, 25, 25]);
    for (const i of [5, 6, 7]) expect(clipComplete(out, i, FRAMES)).toBe(true);
    expect(clipComplete(out, 8, FRAMES)).toBe(false);
    expect(framePath(out, 0, 7, 1500)).toMatch(/frame-0007\.png$/);
  });

  it('is resumable: a clip missing a frame or its GIF is incomplete, and rewriting gives the same bytes', () => {
    const frame = readFileSync(framePath(out, 6, 2, FRAMES));
    const gifBytes = readFileSync(clipGifPath(out, 7));
    rmSync(framePath(out, 6, 2, FRAMES));
    rmSync(clipGifPath(out, 7));
    expect([5, 6, 7].map((i) => clipComplete(out, i, FRAMES))).toEqual([true, false, false]);
    const before = statSync(framePath(out, 5, 0, FRAMES)).mtimeMs;
    // What generate does per batch: rewrite only the batches that are not complete (here the one batch).
    writeClips(out, { ...l, images: l.images.slice(1) }, 6, { fps: 4 });
    expect(readFileSync(framePath(out, 6, 2, FRAMES)).equals(frame)).toBe(true);
    expect(readFileSync(clipGifPath(out, 7)).equals(gifBytes)).toBe(true);
    expect(statSync(framePath(out, 5, 0, FRAMES)).mtimeMs).toBe(before);
    expect(readdirSync(join(out, 'clips')).some((n) => n.includes('tmp'))).toBe(false);
  });
});

describe('readClips', () => {
  const l = level(2, R, FRAMES, 5);

  it('reads a generate samples directory from its frame PNGs, passing over incomplete clips', async () => {
    const out = join(dir, 'generated');
    writeClips(out, l, 0);
    writeFileSync(join(out, 'manifest.json'), JSON.stringify({ frames: FRAMES }));
    // An interrupted third clip: two frames, no GIF.
    mkdirSync(clipFolder(out, 2));
    writePng(framePath(out, 2, 0, FRAMES), frameOf(l, 0, 0));
    writePng(framePath(out, 2, 1, FRAMES), frameOf(l, 0, 1));
    expect(isClipSource(out)).toBe(true);
    const skipped: Record<string, number> = {};
    const clips = await readAll(out, skipped);
    expect(clips.map((c) => c.id)).toEqual(['000000', '000001']);
    expect(skipped).toEqual({ 'incomplete clip': 1 });
    clips.forEach((clip, k) => expect(clip.frames).toEqual([0, 1, 2, 3].map((f) => frameOf(l, k, f))));
  });

  it('reads a folder of clip folders (frames in name order) and GIFs, counting bad clips by reason', async () => {
    const source = join(dir, 'mixed');
    mkdirSync(source);
    for (const [id, k] of [
      ['a', 0],
      ['c', 1],
    ] as const) {
      mkdirSync(join(source, id));
      // Written out of order: the reader sorts by name.
      for (const f of [3, 1, 0, 2]) writePng(join(source, id, `f${f}.png`), frameOf(l, k, f));
    }
    writeFileSync(join(source, 'b.gif'), clipGif(l, 1, { scale: 2 }));
    const good = clipGif(l, 0, { scale: 1 });
    writeFileSync(join(source, 'd-corrupt.gif'), good.subarray(0, good.length >> 1));
    writeFileSync(join(source, 'e-empty.gif'), new Uint8Array());
    mkdirSync(join(source, 'f-empty-folder'));
    mkdirSync(join(source, 'g-bad-frame'));
    writePng(join(source, 'g-bad-frame', '0.png'), frameOf(l, 0, 0));
    writeFileSync(join(source, 'g-bad-frame', '1.png'), 'not a png');
    writeFileSync(join(source, 'notes.txt'), 'ignored');
    expect(isClipSource(source)).toBe(true); // GIFs and no images at the top
    // Clip folders alone look like image folders: --frames says they are clips.
    const folders = join(dir, 'folders');
    mkdirSync(join(folders, 'a'), { recursive: true });
    writePng(join(folders, 'a', '0.png'), frameOf(l, 0, 0));
    expect(isClipSource(folders)).toBe(false);

    const skipped: Record<string, number> = {};
    const clips = await readAll(source, skipped);
    expect(clips.map((c) => c.id)).toEqual(['a', 'b', 'c']);
    expect(skipped).toEqual({ 'corrupt gif': 1, 'empty file': 1, 'empty clip': 1, 'corrupt frame': 1 });
    expect(clips[0].frames).toEqual([0, 1, 2, 3].map((f) => frameOf(l, 0, f)));
    expect(clips[2].frames).toEqual([0, 1, 2, 3].map((f) => frameOf(l, 1, f)));
    // The GIF at scale 2: 16 px frames, each pixel the source pixel (x/2, y/2).
    expect(clips[1].frames.map((f) => [f.width, f.height])).toEqual(new Array(FRAMES).fill([16, 16]));
    expect(pixel(clips[1].frames[3], 9, 5)).toEqual(pixel(frameOf(l, 1, 3), 4, 2));

    const limited: Clip[] = [];
    for await (const clip of readClips(source, { limit: 2 })) limited.push(clip);
    expect(limited.map((c) => c.id)).toEqual(['a', 'b']);
  });

  it('reads a folder of GIFs or one GIF, and detects them as clips', async () => {
    const gifs = join(dir, 'gifs');
    mkdirSync(gifs);
    writeFileSync(join(gifs, 'x.gif'), clipGif(l, 0, { scale: 1 }));
    writeFileSync(join(gifs, 'y.gif'), clipGif(l, 1, { scale: 1 }));
    expect(isClipSource(gifs)).toBe(true);
    expect(isClipSource(join(gifs, 'x.gif'))).toBe(true);
    const clips = await readAll(gifs);
    expect(clips.map((c) => c.id)).toEqual(['x', 'y']);
    expect(clips[1].frames[2]).toEqual(frameOf(l, 1, 2));
    expect((await readAll(join(gifs, 'y.gif')))[0].frames).toEqual(clips[1].frames);
  });

  it('throws at once for a missing source, a non-GIF file or a directory without clips', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, 'a.txt'), 'x');
    await expect(readAll(join(dir, 'nope'))).rejects.toThrow(/no such file or directory/);
    await expect(readAll(join(empty, 'a.txt'))).rejects.toThrow(/not a \.gif or a directory of clips/);
    await expect(readAll(empty)).rejects.toThrow(/no clips under .*empty/);
    const images = join(dir, 'image-samples');
    mkdirSync(join(images, 'images'), { recursive: true });
    writeFileSync(join(images, 'manifest.json'), '{}');
    await expect(readAll(images)).rejects.toThrow(/holds image samples \(images\/\), not clips/);
    expect(existsSync(empty)).toBe(true);
  });
});
