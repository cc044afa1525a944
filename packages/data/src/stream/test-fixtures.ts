// Test helpers (not exported from the package): fake sharded sources and generated image files.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { SampleRef, ShardedSource, SkipCounts } from '../sources/source.js';
import { countSkip } from '../sources/source.js';

/** A reference whose key is `s<shard>-<index>` and whose file is not meant to be read. */
export const fakeRef = (shard: number, index: number): SampleRef => ({
  key: `s${shard}-${index}`,
  image: { path: `/nonexistent/${shard}/${index}.jpg`, offset: 0, size: 1 },
  caption: `caption ${shard} ${index}`,
  label: shard,
});

/**
 * An in-memory source: shard i holds `refs[i]`. A `null` entry is a bad entry that `scan` counts
 * as 'missing caption' and skips, as the real sources do.
 */
export function memorySource(refs: Array<Array<SampleRef | null>>, id = 'memory'): ShardedSource & { scans: number } {
  const source = {
    id,
    kind: 'cc12m' as const,
    shards: refs.map((_, i) => `shard-${i}`),
    classNames: [],
    scans: 0,
    async *scan(index: number, skipped: SkipCounts): AsyncGenerator<SampleRef> {
      source.scans += 1;
      for (const ref of refs[index]) {
        if (ref === null) countSkip(skipped, 'missing caption');
        else yield ref;
      }
    },
  };
  return source;
}

/** `shards` shards of `perShard` fake references each. */
export const fakeShards = (shards: number, perShard: number): SampleRef[][] =>
  Array.from({ length: shards }, (_, s) => Array.from({ length: perShard }, (_, i) => fakeRef(s, i)));

/** A `w`×`h` RGB image whose pixels encode `seed` (a gradient plus a constant), for order checks. */
export function testPixels(w: number, h: number, seed: number): Uint8Array {
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      px[o] = (seed * 37) % 256;
      px[o + 1] = Math.round((x / Math.max(1, w - 1)) * 255);
      px[o + 2] = Math.round((y / Math.max(1, h - 1)) * 255);
    }
  }
  return px;
}

/** Encodes `testPixels(w, h, seed)` as PNG (lossless, for exact checks) or JPEG. */
export function encodeImage(w: number, h: number, seed: number, format: 'png' | 'jpeg'): Promise<Buffer> {
  const image = sharp(Buffer.from(testPixels(w, h, seed)), { raw: { width: w, height: h, channels: 3 } });
  return (format === 'png' ? image.png() : image.jpeg({ quality: 90 })).toBuffer();
}

/**
 * Writes image files 0…n−1 into `dir` and returns a one-shard source over them; `corrupt` indices get garbage
 * bytes.
 */
export async function imageFileSource(
  dir: string,
  n: number,
  options: { size?: number; format?: 'png' | 'jpeg'; corrupt?: number[]; shards?: number } = {},
): Promise<ShardedSource> {
  mkdirSync(dir, { recursive: true });
  const size = options.size ?? 8;
  const format = options.format ?? 'png';
  const shards = options.shards ?? 1;
  const refs: SampleRef[][] = Array.from({ length: shards }, () => []);
  for (let i = 0; i < n; i++) {
    const path = join(dir, `${String(i).padStart(4, '0')}.${format === 'png' ? 'png' : 'jpg'}`);
    const bytes = options.corrupt?.includes(i)
      ? Buffer.from('this is not an image, just some text bytes')
      : await encodeImage(size, size, i, format);
    writeFileSync(path, bytes);
    refs[i % shards].push({
      key: String(i),
      image: { path, offset: 0, size: bytes.length },
      caption: `image ${i}`,
      label: i,
    });
  }
  return memorySource(refs, `files:${dir}`);
}

/** The ffmpeg of the @ffmpeg-installer/ffmpeg dev dependency (a static build), for video fixtures. */
export async function testFfmpeg(): Promise<string> {
  const installer = (await import('@ffmpeg-installer/ffmpeg')) as { path: string; default?: { path: string } };
  return installer.default?.path ?? installer.path;
}

/** Writes a `frames`-frame `size`×`size` MPEG-4 test pattern (moving, so frames differ) to `path`. */
export async function writeTestVideo(path: string, frames: number, size = 16, pattern = 'testsrc'): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  execFileSync(await testFfmpeg(), [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `${pattern}=size=${size}x${size}:rate=10`,
    '-frames:v',
    String(frames),
    '-pix_fmt',
    'yuv420p',
    path,
  ]);
}
