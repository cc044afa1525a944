/// <reference path="./gifenc.d.ts" />
import { spawn } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { checkFfmpeg, encodePng, ffmpegBinary } from '@matryoshka-ts/data';
import * as gifencModule from 'gifenc';
import type { LevelSamples } from './generate.js';
import { byteOf, rgbOf } from './grid.js';
import { writeRunFileAtomic } from './run-files.js';

/**
 * Video samples as files: an animated GIF per clip (gifenc, pure JS), an MP4 per clip where ffmpeg
 * is installed, and a PNG contact sheet of every level's frames.
 */

// Node loads gifenc's CommonJS build (package.json "main"), whose exports all arrive as the default
// export (named imports fail there); a bundler that reads "module" gets the ESM build's named exports.
const gifenc = typeof gifencModule.GIFEncoder === 'function' ? gifencModule : gifencModule.default;

/** Frames are upscaled (nearest, by an integer factor) to at least this many pixels by default. */
const MIN_SIZE = 128;

/** The default integer upscale of an r-pixel frame: the smallest that reaches MIN_SIZE. */
function defaultScale(resolution: number): number {
  return Math.max(1, Math.ceil(MIN_SIZE / resolution));
}

function checkPositive(name: string, value: number, integer: boolean): void {
  if (!(Number.isFinite(value) && value > 0 && (!integer || Number.isInteger(value))))
    throw new Error(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`);
}

/** Sample `sample`'s frames as RGB bytes, [frames, r, r, 3] (grey repeated). */
function clipRgb(level: LevelSamples, sample: number): Uint8Array {
  if (!(Number.isInteger(sample) && sample >= 0 && sample < level.images.length))
    throw new RangeError(`sample ${sample} is out of range: the level holds ${level.images.length} samples`);
  const { resolution: r, channels, frames } = level;
  const rgb = rgbOf(channels);
  const values = level.images[sample];
  const pixels = frames * r * r;
  const out = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = byteOf(rgb(values, p * channels, c));
  return out;
}

/**
 * Nearest upscaling of `frames` r×r frames of `depth` bytes per pixel by the integer `scale` onto
 * `size`×`size` frames; a size beyond r·scale repeats the last row and column (to pad to even sizes).
 */
function upscale(src: Uint8Array, frames: number, r: number, depth: number, scale: number, size: number): Uint8Array {
  const out = new Uint8Array(frames * size * size * depth);
  for (let f = 0; f < frames; f++)
    for (let y = 0; y < size; y++) {
      const sy = Math.min(r - 1, Math.floor(y / scale));
      for (let x = 0; x < size; x++) {
        const from = ((f * r + sy) * r + Math.min(r - 1, Math.floor(x / scale))) * depth;
        out.set(src.subarray(from, from + depth), ((f * size + y) * size + x) * depth);
      }
    }
  return out;
}

/**
 * An animated GIF of one sample's frames, looping forever at `fps` (default 8; GIF stores delays in
 * hundredths of a second), upscaled nearest by the integer `scale` (default: to at least 128 px), with
 * one 256-colour palette quantized from all frames so colours do not flicker between frames.
 */
export function clipGif(
  level: LevelSamples,
  sample: number,
  options: { fps?: number; scale?: number } = {},
): Uint8Array {
  const { fps = 8, scale = defaultScale(level.resolution) } = options;
  checkPositive('clipGif: fps', fps, false);
  checkPositive('clipGif: scale', scale, true);
  const { resolution: r, frames } = level;
  const rgb = clipRgb(level, sample);
  const rgba = new Uint8Array(frames * r * r * 4); // gifenc reads RGBA through the array's whole buffer
  for (let p = 0; p < frames * r * r; p++) {
    rgba.set(rgb.subarray(p * 3, p * 3 + 3), p * 4);
    rgba[p * 4 + 3] = 255;
  }
  const palette = gifenc.quantize(rgba, 256, { format: 'rgb565' });
  const size = r * scale;
  const index = upscale(gifenc.applyPalette(rgba, palette, 'rgb565'), frames, r, 1, scale, size);
  const gif = gifenc.GIFEncoder();
  for (let f = 0; f < frames; f++) {
    const frame = index.subarray(f * size * size, (f + 1) * size * size);
    // The palette goes with the first frame only: it becomes the global colour table for all.
    gif.writeFrame(frame, size, size, f === 0 ? { palette, delay: 1000 / fps, repeat: 0 } : { delay: 1000 / fps });
  }
  gif.finish();
  return gif.bytes();
}

/**
 * A PNG contact sheet: one row per sample; level 0's frames left to right, then, after a wider gap,
 * each other level's frames upscaled (nearest) to level 0's size; 2-pixel white borders.
 */
export function contactSheetPng(levels: readonly LevelSamples[]): Uint8Array {
  if (levels.length === 0) throw new Error('contactSheetPng: no levels');
  const size = levels[0].resolution;
  const n = levels[0].images.length;
  for (const [l, level] of levels.entries())
    if (level.images.length !== n)
      throw new Error(`contactSheetPng: level ${l} holds ${level.images.length} samples, level 0 holds ${n}`);
  const gap = 2;
  const levelGap = 8;
  // Each level's first column: its frames stand `gap` apart, levels `levelGap` apart.
  const starts: number[] = [];
  let x0 = gap;
  for (const level of levels) {
    starts.push(x0);
    x0 += level.frames * (size + gap) - gap + levelGap;
  }
  const width = x0 - levelGap + gap;
  const height = n * (size + gap) + gap;
  const data = new Uint8Array(width * height * 3).fill(255);
  levels.forEach((level, l) => {
    const { resolution, channels } = level;
    const rgb = rgbOf(channels);
    const scale = size / resolution;
    const frameSize = resolution * resolution * channels;
    level.images.forEach((img, row) => {
      for (let f = 0; f < level.frames; f++) {
        const left = starts[l] + f * (size + gap);
        for (let y = 0; y < size; y++)
          for (let x = 0; x < size; x++) {
            const src = f * frameSize + (Math.floor(y / scale) * resolution + Math.floor(x / scale)) * channels;
            const dst = ((gap + row * (size + gap) + y) * width + left + x) * 3;
            for (let c = 0; c < 3; c++) data[dst + c] = byteOf(rgb(img, src, c));
          }
      }
    });
  });
  return encodePng({ width, height, data });
}

/** Writes `bytes` to `path` through a temporary name and a rename, so readers never see part of it. */
function writeAtomic(path: string, bytes: Uint8Array): void {
  writeRunFileAtomic(path, bytes, `${path}.${process.pid}.tmp`);
}

/** Encodes raw RGB frames (frames × height × width × 3) as an H.264 yuv420p MP4 at `path`, atomically. */
function encodeMp4(
  binary: string,
  frames: Uint8Array,
  width: number,
  height: number,
  fps: number,
  path: string,
): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  // The output format is named: ffmpeg cannot infer it from the temporary name's extension.
  const args = ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24'];
  args.push('-s', `${width}x${height}`, '-r', String(fps), '-i', '-', '-an', '-c:v', 'libx264');
  args.push('-pix_fmt', 'yuv420p', '-movflags', '+faststart', '-f', 'mp4', tmp);
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    let settled = false;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      rmSync(tmp, { force: true });
      reject(error);
    };
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.on('error', (error) => fail(new Error(`ffmpeg (${binary}) did not start: ${error.message}`)));
    // An early exit breaks the pipe (EPIPE); the exit status below says why.
    child.stdin.on('error', () => {});
    child.on('close', (code, signal) => {
      if (settled) return;
      if (code !== 0) {
        const why = stderr.trim().split('\n').pop() || (signal ? `killed by ${signal}` : `exit code ${code}`);
        fail(new Error(`ffmpeg could not encode ${path}: ${why}`));
        return;
      }
      try {
        renameSync(tmp, path);
        settled = true;
        resolve();
      } catch (error) {
        fail(error as Error);
      }
    });
    child.stdin.end(frames);
  });
}

/**
 * Writes a video level's samples into `dir`: `<prefix>-<k>.gif` per sample of level 0 (prefix
 * default 'sample'), a contact sheet (`contactSheet`, default `contact-sheet.png`), and where
 * ffmpeg runs (`ffmpeg` option, else MDM_FFMPEG, else PATH) and `mp4` is not false,
 * `<prefix>-<k>.mp4` (H.264, yuv420p); otherwise `mp4Skipped` says why.
 * Every file is written atomically. Throws when level 0 is not a video level (one frame).
 */
export async function writeVideoSamples(
  dir: string,
  levels: readonly LevelSamples[],
  options: { fps?: number; mp4?: boolean; prefix?: string; ffmpeg?: string; contactSheet?: string } = {},
): Promise<{ gifs: string[]; mp4s: string[]; contactSheet: string; mp4Skipped?: string }> {
  const { fps = 8, prefix = 'sample' } = options;
  if (levels.length === 0) throw new Error('writeVideoSamples: no levels');
  const top = levels[0];
  if (top.frames === 1)
    throw new Error('writeVideoSamples: level 0 is not a video level (1 frame); write images with sampleGridPng');
  checkPositive('writeVideoSamples: fps', fps, false);
  mkdirSync(dir, { recursive: true });

  const gifs: string[] = [];
  for (let k = 0; k < top.images.length; k++) {
    const path = join(dir, `${prefix}-${k}.gif`);
    writeAtomic(path, clipGif(top, k, { fps }));
    gifs.push(path);
  }
  const contactSheet = join(dir, options.contactSheet ?? 'contact-sheet.png');
  writeAtomic(contactSheet, contactSheetPng(levels));

  const mp4s: string[] = [];
  let mp4Skipped: string | undefined;
  if (options.mp4 === false) mp4Skipped = 'MP4 output turned off (mp4: false)';
  else {
    try {
      checkFfmpeg(options.ffmpeg);
    } catch (error) {
      mp4Skipped = `no MP4s: ${(error as Error).message.split('\n')[0]}`;
    }
  }
  if (mp4Skipped === undefined) {
    const binary = ffmpegBinary(options.ffmpeg);
    const { resolution: r, frames } = top;
    const scale = defaultScale(r);
    const size = r * scale + ((r * scale) % 2); // yuv420p needs even sides: repeat the last row and column
    for (let k = 0; k < top.images.length; k++) {
      const path = join(dir, `${prefix}-${k}.mp4`);
      await encodeMp4(binary, upscale(clipRgb(top, k), frames, r, 3, scale, size), size, size, fps, path);
      mp4s.push(path);
    }
  }
  return mp4Skipped === undefined ? { gifs, mp4s, contactSheet } : { gifs, mp4s, contactSheet, mp4Skipped };
}
