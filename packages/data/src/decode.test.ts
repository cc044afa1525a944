import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ffmpegInstaller from '@ffmpeg-installer/ffmpeg';
import { DataError, isUserError } from '@matryoshka-ts/core';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkFfmpeg, decodeImage, decodeVideoClip } from './decode.js';

/** The ffmpeg shipped in the npm package (tests only; the library uses MDM_FFMPEG or PATH). */
const FFMPEG = ffmpegInstaller.path;
const dir = mkdtempSync(join(tmpdir(), 'mdm-decode-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Rgb = [number, number, number];
const RED: Rgb = [255, 0, 0];
const BLUE: Rgb = [0, 0, 255];

/** An RGB image from a per-pixel colour function, encoded as PNG (lossless, so pixels are known). */
function rgbPng(width: number, height: number, colour: (x: number, y: number) => Rgb): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw.set(colour(x, y), (y * width + x) * 3);
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

const pixel = (image: Uint8Array, size: number, x: number, y: number) =>
  Array.from(image.subarray((y * size + x) * 3, (y * size + x) * 3 + 3));

/** Largest channel difference from `colour` over the pixels with `where(x, y)`. */
function worstOff(image: Uint8Array, size: number, colour: Rgb, where: (x: number, y: number) => boolean): number {
  let worst = 0;
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++)
      if (where(x, y))
        for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(image[(y * size + x) * 3 + c] - colour[c]));
  return worst;
}

describe('decodeImage', () => {
  it('resizes the smaller side and centre-crops: a left/right split survives, away from the seam', async () => {
    // 80×40, red left of x = 40: the smaller side 40 → 20 halves everything (40×20), the crop keeps
    // x 10…29 of that, so the seam lands in the middle of the 20×20 output.
    const image = await decodeImage(await rgbPng(80, 40, (x) => (x < 40 ? RED : BLUE)), 20);
    expect(image.length).toBe(20 * 20 * 3);
    expect(worstOff(image, 20, RED, (x) => x <= 7)).toBeLessThanOrEqual(1); // lanczos rings only near the seam
    expect(worstOff(image, 20, BLUE, (x) => x >= 12)).toBeLessThanOrEqual(1);
  });

  it('takes the smaller side of a portrait image too, cropping top and bottom', async () => {
    // 30×90: 30 → 10 (10×30), crop rows 10…19, i.e. rows 30…59 of the original: green only.
    const colour = (_x: number, y: number): Rgb => (y < 30 ? RED : y < 60 ? [0, 255, 0] : BLUE);
    const image = await decodeImage(await rgbPng(30, 90, colour), 10);
    expect(worstOff(image, 10, [0, 255, 0], (_x, y) => y >= 2 && y <= 7)).toBeLessThanOrEqual(1);
  });

  it('is exactly a smaller-side resize (lanczos3) followed by a centre crop', async () => {
    // Odd excess (99 − 64 = 35) shows where the crop starts: ⌈35 / 2⌉ = 18.
    const colour = (x: number, y: number): Rgb => [(x * 7 + y * 3) & 255, (x * x + y) & 255, (y * 5) & 255];
    const png = await rgbPng(310, 200, colour);
    const resized = await sharp(png)
      .resize({ height: 64, kernel: 'lanczos3' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect(resized.info.width).toBe(99);
    const left = Math.ceil((resized.info.width - 64) / 2);
    const cropped = await sharp(resized.data, { raw: { width: 99, height: 64, channels: 3 } })
      .extract({ left, top: 0, width: 64, height: 64 })
      .raw()
      .toBuffer();
    expect(Buffer.from(await decodeImage(png, 64)).equals(cropped)).toBe(true);
  });

  it('mirrors left-right with flip', async () => {
    const png = await rgbPng(48, 32, (x, y) => [x * 5, y * 7, (x * y) & 255]);
    const plain = await decodeImage(png, 16);
    const flipped = await decodeImage(png, 16, { flip: true });
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 16; x++) expect(pixel(flipped, 16, x, y)).toEqual(pixel(plain, 16, 15 - x, y));
    expect(pixel(flipped, 16, 0, 0)).not.toEqual(pixel(plain, 16, 0, 0));
  });

  it('flattens transparency onto white', async () => {
    // Left half fully transparent blue, right half half-transparent red; no resize at 4 px.
    const raw = Buffer.alloc(4 * 4 * 4);
    for (let i = 0; i < 16; i++) raw.set(i % 4 < 2 ? [0, 0, 255, 0] : [255, 0, 0, 128], i * 4);
    const png = await sharp(raw, { raw: { width: 4, height: 4, channels: 4 } })
      .png()
      .toBuffer();
    const image = await decodeImage(png, 4);
    expect(pixel(image, 4, 0, 0)).toEqual([255, 255, 255]);
    expect(pixel(image, 4, 3, 3)).toEqual([255, 127, 127]); // 255·128/255 + 255·127/255 = 255; 0 + 127
  });

  it('gives RGB for grey JPEGs and reads WebP', async () => {
    const grey = await sharp(Buffer.alloc(20 * 20, 90), { raw: { width: 20, height: 20, channels: 1 } })
      .jpeg()
      .toBuffer();
    const image = await decodeImage(grey, 10);
    expect(image.length).toBe(300);
    expect(worstOff(image, 10, [90, 90, 90], () => true)).toBeLessThanOrEqual(2);
    const webp = await sharp({ create: { width: 12, height: 12, channels: 3, background: { r: 0, g: 200, b: 0 } } })
      .webp({ lossless: true })
      .toBuffer();
    expect(pixel(await decodeImage(webp, 6), 6, 3, 3)).toEqual([0, 200, 0]);
  });

  it('throws on corrupt, truncated and empty input', async () => {
    const jpeg = await sharp(await rgbPng(64, 64, (x, y) => [x * 4, y * 4, 0]))
      .jpeg()
      .toBuffer();
    await expect(decodeImage(Buffer.from('definitely not an image'), 8)).rejects.toThrow();
    await expect(decodeImage(jpeg.subarray(0, jpeg.length >> 1), 8)).rejects.toThrow();
    const png = await rgbPng(16, 16, () => RED);
    await expect(decodeImage(png.subarray(0, png.length - 30), 8)).rejects.toThrow();
    await expect(decodeImage(new Uint8Array(), 8)).rejects.toThrow('empty');
    await expect(decodeImage(png, 0)).rejects.toThrow('size');
  });

  it('an empty input is a DataError; a bad size argument is a plain (programming) error', async () => {
    await expect(decodeImage(new Uint8Array(), 8)).rejects.toBeInstanceOf(DataError);
    await expect(decodeImage(new Uint8Array(), 8)).rejects.toMatchObject({ code: 'DATA_INVALID' });
    await expect(decodeImage(new Uint8Array(), 8)).rejects.toThrow(/^decodeImage: empty input$/);
    const error = await decodeImage(await rgbPng(4, 4, () => RED), 0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(isUserError(error)).toBe(false);
  });
});

describe('decodeVideoClip', () => {
  const grey = join(dir, 'grey.mp4');
  const pattern = join(dir, 'testsrc.mp4');

  beforeAll(async () => {
    // 64 frames, frame k a flat grey of level 4k, lossless H.264: each decoded frame says its index.
    const frames = join(dir, 'frames');
    mkdirSync(frames);
    for (let k = 0; k < 64; k++)
      await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 4 * k, g: 4 * k, b: 4 * k } } })
        .png()
        .toFile(join(frames, `${String(k).padStart(3, '0')}.png`));
    const quiet = ['-y', '-v', 'error', '-nostdin'];
    execFileSync(FFMPEG, [
      ...quiet,
      '-framerate',
      '10',
      '-i',
      join(frames, '%03d.png'),
      '-c:v',
      'libx264',
      '-qp',
      '0',
      '-pix_fmt',
      'yuv420p',
      grey,
    ]);
    execFileSync(FFMPEG, [
      ...quiet,
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=48x32:rate=10',
      '-t',
      '3',
      '-pix_fmt',
      'yuv420p',
      pattern,
    ]);
  });

  /** The grey level of each frame's centre pixel, i.e. (about) 4 × the source frame index. */
  function levels(clip: Uint8Array, size: number): number[] {
    const frame = size * size * 3;
    const out: number[] = [];
    for (let f = 0; f < clip.length / frame; f++) out.push(clip[f * frame + ((size >> 1) * size + (size >> 1)) * 3]);
    return out;
  }

  it('takes 16 frames, every 4th, by default', async () => {
    const clip = await decodeVideoClip(grey, 8, { ffmpeg: FFMPEG });
    expect(clip.length).toBe(16 * 8 * 8 * 3);
    const got = levels(clip, 8);
    got.forEach((level, f) => expect(Math.abs(level - 16 * f)).toBeLessThanOrEqual(3)); // frames 0, 4, 8, …, 60
  });

  it('honours frames, stride and start', async () => {
    const got = levels(await decodeVideoClip(grey, 8, { frames: 5, stride: 3, start: 2, ffmpeg: FFMPEG }), 8);
    expect(got).toHaveLength(5);
    got.forEach((level, f) => expect(Math.abs(level - 4 * (2 + 3 * f))).toBeLessThanOrEqual(3));
  });

  it('resizes the smaller side and crops square frames; flip mirrors each frame', async () => {
    const plain = await decodeVideoClip(pattern, 16, { frames: 4, stride: 2, ffmpeg: FFMPEG });
    const flipped = await decodeVideoClip(pattern, 16, { frames: 4, stride: 2, flip: true, ffmpeg: FFMPEG });
    expect(plain.length).toBe(4 * 16 * 16 * 3);
    const at = (clip: Uint8Array, f: number, x: number, y: number) =>
      Array.from(clip.subarray(f * 768 + (y * 16 + x) * 3, f * 768 + (y * 16 + x) * 3 + 3));
    for (const f of [0, 3])
      for (let y = 0; y < 16; y += 5)
        for (let x = 0; x < 16; x++) expect(at(flipped, f, x, y)).toEqual(at(plain, f, 15 - x, y));
  });

  it("says 'video too short' when the clip needs more frames than the video has", async () => {
    await expect(decodeVideoClip(grey, 8, { frames: 16, stride: 5, ffmpeg: FFMPEG })).rejects.toThrow(
      /video too short: .* 13 of 16 frames/,
    );
  });

  it('throws for a corrupt or missing video', async () => {
    const corrupt = join(dir, 'corrupt.mp4');
    writeFileSync(corrupt, Buffer.from('ftypisom but not really a video at all'));
    await expect(decodeVideoClip(corrupt, 8, { ffmpeg: FFMPEG })).rejects.toThrow(
      /unreadable video: ffmpeg failed on .*corrupt\.mp4/,
    );
    await expect(decodeVideoClip(join(dir, 'nope.mp4'), 8, { ffmpeg: FFMPEG })).rejects.toThrow(/unreadable video/);
    await expect(decodeVideoClip(corrupt, 8, { ffmpeg: FFMPEG })).rejects.toBeInstanceOf(DataError);
  });
});

describe('ffmpeg resolution', () => {
  const saved = process.env.MDM_FFMPEG;
  afterEach(() => {
    if (saved === undefined) delete process.env.MDM_FFMPEG;
    else process.env.MDM_FFMPEG = saved;
  });
  const message = 'ffmpeg not found: install it (Debian: apt-get install ffmpeg) or set MDM_FFMPEG';

  it('fails with a message that says how to install it when MDM_FFMPEG points nowhere', async () => {
    process.env.MDM_FFMPEG = join(dir, 'no-such-ffmpeg');
    expect(() => checkFfmpeg()).toThrow(message);
    await expect(decodeVideoClip(join(dir, 'grey.mp4'), 8)).rejects.toThrow(message);
    expect(() => checkFfmpeg()).toThrow(DataError);
    await expect(decodeVideoClip(join(dir, 'grey.mp4'), 8)).rejects.toMatchObject({ code: 'DATA_INVALID' });
  });

  it('finds ffmpeg through MDM_FFMPEG, and rejects a binary that is not ffmpeg', () => {
    process.env.MDM_FFMPEG = FFMPEG;
    expect(checkFfmpeg()).toMatch(/^ffmpeg version/);
    expect(() => checkFfmpeg(process.execPath)).toThrow(message); // node runs, but is no ffmpeg
  });
});
