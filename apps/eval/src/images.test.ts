import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePng } from '@matryoshka-ts/data';
import type { Uint8Image } from '@matryoshka-ts/metrics';
import { type TarWriterMember as TarMember, paxRecord, seeded, tar } from '@matryoshka-ts/test-utils';
import { encode as encodeJpeg } from 'jpeg-js';
import { type ColorType, PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { type NamedImage, floatToUint8Image, readImages, writePng } from './images.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-eval-images-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---- test data ----

function png(width: number, height: number, data: number[] | Uint8Array, colorType: ColorType): Uint8Array {
  const format = { colorType, inputColorType: colorType, inputHasAlpha: colorType === 6 };
  const image = new PNG({ width, height, ...format });
  image.data = Buffer.from(data);
  return new Uint8Array(PNG.sync.write(image, format));
}

const random = seeded(7);
const rgbPixels = Array.from({ length: 3 * 2 * 3 }, () => Math.floor(random() * 256));
const rgbPng = png(3, 2, rgbPixels, 2);
// Opaque red, half-transparent green, fully transparent blue, quarter-opaque black.
const rgbaPixels = [255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 0, 0, 0, 0, 64];
const rgbaPng = png(2, 2, rgbaPixels, 6);
const greyPixels = [0, 40, 80, 120, 160, 200, 240, 255, 7];
const greyPng = png(3, 3, greyPixels, 0);
const corruptPng = rgbPng.slice(0, rgbPng.length - 10); // IEND and part of IDAT missing

// A smooth 16×16 gradient: JPEG keeps it within a few levels (see the JPEG test).
const jpegRgb = new Uint8Array(16 * 16 * 3);
for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) jpegRgb.set([x * 12, y * 12, 128], (y * 16 + x) * 3);
const jpegRgba = new Uint8Array(16 * 16 * 4);
for (let i = 0; i < 256; i++) jpegRgba.set([...jpegRgb.subarray(i * 3, i * 3 + 3), 255], i * 4);
const jpeg = new Uint8Array(encodeJpeg({ width: 16, height: 16, data: jpegRgba }, 100).data);

/** Alpha composited over white, as the reader does. */
function overWhite(rgba: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < rgba.length; i += 4)
    for (let c = 0; c < 3; c++) out.push(Math.round(rgba[i + c] * (rgba[i + 3] / 255) + 255 * (1 - rgba[i + 3] / 255)));
  return out;
}

function write(path: string, bytes: Uint8Array | string) {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, bytes);
}

const images = join(dir, 'images');
write(join(images, 'a', '01.png'), rgbPng);
write(join(images, 'a', '02.PNG'), rgbaPng);
write(join(images, 'b', 'grey.png'), greyPng);
write(join(images, 'c.jpg'), jpeg);
write(join(images, 'd-corrupt.png'), corruptPng);
write(join(images, 'd-truncated.jpg'), jpeg.subarray(0, jpeg.length >> 1));
write(join(images, 'e-empty.jpeg'), new Uint8Array());
write(join(images, 'notes.txt'), 'not an image');

const longName = `imgs/${'very-long-directory-name/'.repeat(5)}long.png`;
const goodMembers: TarMember[] = [
  { name: 'imgs/', type: '5' },
  { name: 'imgs/000.png', data: rgbPng },
  { name: 'imgs/000.txt', data: 'a caption' },
  { name: '././@LongLink', type: 'L', data: `${longName}\0` },
  { name: longName.slice(0, 100), data: greyPng },
  { name: '002.jpg', prefix: 'deep/prefix', data: jpeg },
  { name: 'PaxHeader/x', type: 'x', data: paxRecord('path', 'imgs/päx.png') },
  { name: 'imgs/named-by-pax', data: rgbaPng },
  { name: 'imgs/link.png', type: '2' },
  { name: 'imgs/bad.png', data: corruptPng },
];
const goodTar = tar(goodMembers);
/** Where member k's header starts in goodTar (tar() of the members before it, less its end blocks). */
const headerOffset = (k: number) => tar(goodMembers.slice(0, k)).length - 1024;
write(join(dir, 'good.tar'), goodTar);

const shards = join(dir, 'shards');
for (let k = 0; k < 4; k++)
  write(join(shards, `0000${k}.tar`), tar([{ name: `${k}.png`, data: png(1, 1, [k, k, k], 2) }]));
write(join(shards, 'README.md'), 'shards');

async function readAll(source: string, options: Parameters<typeof readImages>[1] = {}): Promise<NamedImage[]> {
  const out: NamedImage[] = [];
  for await (const item of readImages(source, options)) out.push(item);
  return out;
}

const names = (items: NamedImage[]) => items.map((i) => i.name);
const rgb = (image: Uint8Image) => ({
  width: image.width,
  height: image.height,
  channels: image.channels,
  data: Array.from(image.data),
});

// ---- tests ----

describe('readImages from a directory', () => {
  it('walks recursively in path order, ignoring other files, and counts skips by reason', async () => {
    const skipped: Record<string, number> = {};
    const items = await readAll(images, { skipped });
    expect(names(items)).toEqual(['a/01.png', 'a/02.PNG', 'b/grey.png', 'c.jpg']);
    expect(skipped).toEqual({ 'corrupt image': 2, 'empty file': 1 });
  });

  it('decodes PNGs exactly: RGB as is, RGBA over white, grey expanded', async () => {
    const [rgbItem, rgbaItem, greyItem] = await readAll(images);
    expect(rgb(rgbItem.image)).toEqual({ width: 3, height: 2, channels: 3, data: rgbPixels });
    expect(rgb(rgbaItem.image)).toEqual({ width: 2, height: 2, channels: 3, data: overWhite(rgbaPixels) });
    expect(rgbaItem.image.data.subarray(3, 6)).toEqual(new Uint8Array([127, 255, 127])); // half green over white
    expect(rgb(greyItem.image)).toEqual({
      width: 3,
      height: 3,
      channels: 3,
      data: greyPixels.flatMap((v) => [v, v, v]),
    });
  });

  it('decodes JPEGs to RGB close to the encoded pixels', async () => {
    const { image } = (await readAll(join(images, 'c.jpg')))[0];
    expect(image).toMatchObject({ width: 16, height: 16, channels: 3 });
    // Quality 100 on a smooth gradient: the only losses are the colour-space round trip and DCT
    // rounding, each under a couple of levels; a channel swap or wrong layout would be off by 100+.
    let worst = 0;
    for (let i = 0; i < jpegRgb.length; i++) worst = Math.max(worst, Math.abs(image.data[i] - jpegRgb[i]));
    expect(worst).toBeLessThanOrEqual(3);
  });

  it('stops after `limit` images', async () => {
    expect(names(await readAll(images, { limit: 2 }))).toEqual(['a/01.png', 'a/02.PNG']);
    expect(await readAll(images, { limit: 0 })).toEqual([]);
  });
});

describe('readImages from tars', () => {
  it('reads image members: GNU long names, ustar prefixes, pax paths; skips other entries', async () => {
    const skipped: Record<string, number> = {};
    const items = await readAll(join(dir, 'good.tar'), { skipped });
    expect(names(items)).toEqual(['imgs/000.png', longName, 'deep/prefix/002.jpg', 'imgs/päx.png']);
    expect(skipped).toEqual({ 'corrupt image': 1 });
    expect(rgb(items[0].image).data).toEqual(rgbPixels);
    expect(rgb(items[3].image).data).toEqual(overWhite(rgbaPixels));
  });

  it('keeps what precedes a truncation and counts the tar once', async () => {
    const path = join(dir, 'truncated.tar');
    write(path, goodTar.subarray(0, headerOffset(5) + 512 + 100)); // 100 bytes into the JPEG's data
    const skipped: Record<string, number> = {};
    expect(names(await readAll(path, { skipped }))).toEqual(['imgs/000.png', longName]);
    expect(skipped).toEqual({ 'truncated tar': 1 });
  });

  it('counts a tar cut inside a header as truncated, a bad checksum as corrupt, an empty one as empty', async () => {
    const cut = join(dir, 'cut-header.tar');
    write(cut, goodTar.subarray(0, headerOffset(2) + 100)); // inside the caption's header
    const garbled = goodTar.slice();
    garbled[headerOffset(3)] ^= 1; // the 'L' header's name: its checksum no longer matches
    write(join(dir, 'garbled.tar'), garbled);
    write(join(dir, 'empty.tar'), new Uint8Array());
    const skipped: Record<string, number> = {};
    const items = await readAll([cut, join(dir, 'garbled.tar'), join(dir, 'empty.tar')].join(','), { skipped });
    expect(names(items)).toEqual(['imgs/000.png', 'imgs/000.png']);
    expect(skipped).toEqual({ 'truncated tar': 1, 'corrupt tar': 1, 'empty file': 1 });
  });

  it('expands brace ranges, globs and comma lists in order', async () => {
    expect(names(await readAll(join(shards, '{00000..00003}.tar')))).toEqual(['0.png', '1.png', '2.png', '3.png']);
    expect(names(await readAll(join(shards, '{00002..00001}.tar')))).toEqual(['2.png', '1.png']);
    expect(names(await readAll(join(shards, '0000{3,0}.tar')))).toEqual(['3.png', '0.png']);
    expect(names(await readAll(join(shards, '*.tar')))).toEqual(['0.png', '1.png', '2.png', '3.png']);
    const list = `${join(images, 'a')}, ${join(shards, '{00002..00003}.tar')}`;
    expect(names(await readAll(list))).toEqual(['01.png', '02.PNG', '2.png', '3.png']);
    const pixels = (await readAll(join(shards, '*.tar'))).map((i) => i.image.data[0]);
    expect(pixels).toEqual([0, 1, 2, 3]);
  });

  it('stops after `limit` images across shards', async () => {
    expect(names(await readAll(join(shards, '*.tar'), { limit: 3 }))).toEqual(['0.png', '1.png', '2.png']);
  });
});

describe('readImages errors', () => {
  it('throws before reading anything when a path is missing or a pattern matches nothing', async () => {
    const missing = join(dir, 'no-such-dir');
    await expect(readAll(missing)).rejects.toThrow(missing);
    // The first `next()` already fails: the good source listed first is not read.
    await expect(readImages(`${images},${missing}`).next()).rejects.toThrow(`no such file or directory: ${missing}`);
    await expect(readAll(join(shards, '{00000..00004}.tar'))).rejects.toThrow(join(shards, '00004.tar'));
    await expect(readAll(join(shards, '*.zip'))).rejects.toThrow(
      `pattern matches no directory, .tar or image file: ${join(shards, '*.zip')}`,
    );
    await expect(readAll(join(missing, '*.tar'))).rejects.toThrow(`no such directory: ${missing}`);
    await expect(readAll(join(shards, 'README.md'))).rejects.toThrow('README.md');
    await expect(readAll('')).rejects.toThrow('no image source');
  });

  it('throws for a directory without images', async () => {
    const empty = join(dir, 'no-images');
    write(join(empty, 'x.txt'), 'x');
    await expect(readAll(empty)).rejects.toThrow(`no .png, .jpg or .jpeg files under ${empty}`);
  });
});

describe('writePng', () => {
  it('writes RGB and grey PNGs that read back exactly, leaving no temporary file', () => {
    const out = join(dir, 'written');
    mkdirSync(out);
    const image = { data: Uint8Array.from(rgbPixels), width: 3, height: 2, channels: 3 };
    writePng(join(out, 'rgb.png'), image);
    writePng(join(out, 'grey.png'), { data: Uint8Array.from(greyPixels), width: 3, height: 3, channels: 1 });
    expect(readdirSync(out).sort()).toEqual(['grey.png', 'rgb.png']);
    expect(Array.from(decodePng(readFileSync(join(out, 'rgb.png'))).data)).toEqual(rgbPixels);
    expect(Array.from(decodePng(readFileSync(join(out, 'grey.png'))).data)).toEqual(
      greyPixels.flatMap((v) => [v, v, v]),
    );
  });

  it('rejects data that does not fit the size', () => {
    expect(() => writePng(join(dir, 'bad.png'), { data: new Uint8Array(5), width: 2, height: 2, channels: 3 })).toThrow(
      '5 bytes',
    );
  });
});

describe('floatToUint8Image', () => {
  it('maps [-1, 1] to 0..255, rounding and clamping', () => {
    const data = new Float32Array([-1, 0, 1, -2, 2, 0.5, -0.999, 0.999, 1 / 127.5 - 1, 0, 0, 0]);
    const image = floatToUint8Image(data, 2);
    expect(image).toMatchObject({ width: 2, height: 2, channels: 3 });
    expect(Array.from(image.data)).toEqual([0, 128, 255, 0, 255, 191, 0, 255, 1, 128, 128, 128]);
  });

  it('keeps a grey level grey (1 channel), and refuses latent channels', () => {
    const image = floatToUint8Image(new Float32Array([-1, 0, 1, 0.5]), 2, 1);
    expect(image).toMatchObject({ width: 2, height: 2, channels: 1 });
    expect(Array.from(image.data)).toEqual([0, 128, 255, 191]);
    expect(() => floatToUint8Image(new Float32Array(16), 2, 4)).toThrow(/4-channel samples are not images/);
  });

  it('rejects data that is not size×size×3', () => {
    expect(() => floatToUint8Image(new Float32Array(10), 2)).toThrow('10 values');
  });
});
