import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { DataError } from '@matryoshka-ts/core';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage } from './decode.js';
import { readEmojiImage } from './emoji.js';
import { IMAGE_TOO_LARGE, ImageTooLargeError, MAX_INPUT_PIXELS } from './image-limit.js';
import { decodePng, encodePng } from './png.js';
import { runDecodeTask } from './stream/decode-task.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-image-limit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0);
  return Buffer.concat([head, data, tail]);
}

/** A 70-byte PNG whose IHDR declares `width`×`height` RGB, one tiny IDAT: only a header check refuses it cheaply. */
function declaredPng(width: number, height: number): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const png = Buffer.concat([
    signature,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(10))),
    chunk('IEND', new Uint8Array()),
  ]);
  return new Uint8Array(png);
}

const HUGE = declaredPng(30000, 30000); // 900 M pixels: over the 268 M limit
const small = () =>
  sharp(Buffer.alloc(40 * 30 * 3, 128), { raw: { width: 40, height: 30, channels: 3 } })
    .png()
    .toBuffer();

function expectTooLarge(error: unknown, width: number, height: number, limit: number): void {
  expect(error).toBeInstanceOf(ImageTooLargeError);
  expect(error).toBeInstanceOf(DataError);
  expect((error as DataError).code).toBe('DATA_INVALID');
  expect(error).toMatchObject({ width, height, pixels: width * height, limit });
  expect((error as Error).message).toBe(
    `image too large: ${width}×${height} = ${width * height} pixels, over the limit of ${limit}`,
  );
}

describe('the pixel limit', () => {
  it("is sharp's default, 16383²", () => {
    expect(MAX_INPUT_PIXELS).toBe(16383 * 16383);
  });

  it('decodeImage refuses a header declaring too many pixels as ImageTooLargeError, with size and limit', async () => {
    const error = await decodeImage(HUGE, 8).catch((e: unknown) => e);
    expectTooLarge(error, 30000, 30000, MAX_INPUT_PIXELS);
    // A lower limit applies to a real image; at or under it the image decodes.
    const png = await small();
    expectTooLarge(await decodeImage(png, 8, { maxPixels: 1199 }).catch((e: unknown) => e), 40, 30, 1199);
    expect((await decodeImage(png, 8, { maxPixels: 1200 })).length).toBe(8 * 8 * 3);
    await expect(decodeImage(png, 8, { maxPixels: 0 })).rejects.toThrow(/maxPixels must be a positive integer/);
  });

  it('decodePng (the bundled loader) refuses it from the header, before pngjs allocates gigabytes', () => {
    const started = performance.now();
    let error: unknown;
    try {
      decodePng(HUGE);
    } catch (e) {
      error = e;
    }
    expectTooLarge(error, 30000, 30000, MAX_INPUT_PIXELS);
    expect(performance.now() - started).toBeLessThan(1000); // pngjs alone takes ~35 s and 9 GB on this file
    const png = encodePng({ width: 4, height: 3, data: new Uint8Array(36) });
    expectTooLarge(
      (() => {
        try {
          decodePng(png, undefined, 11);
        } catch (e) {
          return e;
        }
      })(),
      4,
      3,
      11,
    );
    expect(decodePng(png, undefined, 12).width).toBe(4);
  });

  it("the stream's decode task counts it as 'image too large', naming the file, size and limit", async () => {
    const path = join(dir, 'huge.png');
    writeFileSync(path, HUGE);
    const task = {
      image: { path, offset: 0, size: HUGE.length },
      video: false,
      size: 8,
      flip: false,
      frames: 1,
      stride: 1,
    };
    const outcome = await runDecodeTask(task);
    expect(outcome).toEqual({
      ok: false,
      reason: IMAGE_TOO_LARGE,
      message: `${path}: image too large: 30000×30000 = 900000000 pixels, over the limit of ${MAX_INPUT_PIXELS}`,
    });
    // A lowered limit in the task; a corrupt image stays 'corrupt image'.
    const smallPath = join(dir, 'small.png');
    const png = await small();
    writeFileSync(smallPath, png);
    const smallTask = { ...task, image: { path: smallPath, offset: 0, size: png.length } };
    expect(await runDecodeTask({ ...smallTask, maxPixels: 100 })).toMatchObject({ ok: false, reason: IMAGE_TOO_LARGE });
    expect(await runDecodeTask(smallTask)).toMatchObject({ ok: true, frames: 1 });
    const garbage = join(dir, 'garbage.png');
    writeFileSync(garbage, HUGE.subarray(0, 20));
    const corrupt = await runDecodeTask({ ...task, image: { path: garbage, offset: 0, size: 20 } });
    expect(corrupt).toMatchObject({ ok: false, reason: 'corrupt image' });
  });

  it("the bundled emoji loader counts it as 'image too large', apart from corrupt images", () => {
    writeFileSync(join(dir, 'huge-emoji.png'), HUGE);
    writeFileSync(join(dir, 'broken-emoji.png'), HUGE.subarray(0, 20)); // cut inside the IHDR
    const skipped: Record<string, number> = {};
    const item = (file: string) => ({ file, caption: 'x', label: 0 });
    expect(readEmojiImage(dir, item('huge-emoji.png'), skipped)).toBeUndefined();
    expect(readEmojiImage(dir, item('broken-emoji.png'), skipped)).toBeUndefined();
    expect(skipped).toEqual({ 'image too large': 1, 'corrupt image': 1 });
  });
});
