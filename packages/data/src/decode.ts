import { DataError } from '@matryoshka-ts/core';
import { spawn, spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { ImageTooLargeError, MAX_INPUT_PIXELS, checkPixelLimit } from './image-limit.js';

/**
 * Decoding of training inputs to uint8 RGB, HWC (video: frames × H × W × 3), with the paper's
 * preprocessing: resize so the SMALLER side is the target size, then centre-crop the other side
 * (ml-mdm's reader: resize smallest side → centre crop; no random crop). A horizontal flip is an
 * option (the official image pipeline has none; the stream turns it on by default for video).
 */

export interface DecodeImageOptions {
  /** Mirror left–right after the crop. */
  flip?: boolean;
  /** Most pixels (width × height) the input may declare (default `MAX_INPUT_PIXELS`, sharp's default). */
  maxPixels?: number;
}

/**
 * Decodes an encoded image (JPEG, PNG, WebP, GIF, TIFF, AVIF … anything libvips reads, picked by
 * signature, not by file name) to `size`×`size`×3 uint8: transparency flattened onto white (as the
 * bundled PNG decoder does), grey/CMYK converted to sRGB, smaller side resized to `size` with
 * libvips' lanczos3 (sharp's default; the paper does not name a kernel), centre-cropped. This is
 * exactly sharp's `fit: 'cover', position: 'centre'` — checked against an explicit smaller-side resize
 * plus crop in the tests; where the excess is odd the crop starts half a pixel later (offset
 * ⌈excess/2⌉), and the resized long side is rounded, not floored. EXIF orientation is NOT applied,
 * as in the reference reader. Throws on a corrupt or truncated file (libvips' warnings, such as a
 * premature end of a JPEG, count as errors: sharp's default `failOn: 'warning'`); callers count it.
 * An image whose header declares more than `maxPixels` pixels throws an `ImageTooLargeError` (a
 * DataError with the size and the limit) before anything is decoded.
 */
export async function decodeImage(
  bytes: Uint8Array,
  size: number,
  options: DecodeImageOptions = {},
): Promise<Uint8Array> {
  if (!(Number.isInteger(size) && size > 0))
    throw new Error(`decodeImage: size must be a positive integer, got ${size}`);
  if (bytes.length === 0) throw new DataError('decodeImage: empty input');
  const limit = checkPixelLimit(options.maxPixels ?? MAX_INPUT_PIXELS);
  let image = sharp(bytes, { limitInputPixels: limit })
    .flatten({ background: { r: 255, g: 255, b: 255 } })
    .toColourspace('srgb')
    // fastShrinkOnLoad off: JPEG shrink-on-load would decode at 1/2…1/8 scale first and round
    // the scaled size down, a different (blockier) result from a full decode and one resize.
    .resize(size, size, { fit: 'cover', position: 'centre', kernel: 'lanczos3', fastShrinkOnLoad: false });
  if (options.flip) image = image.flop(); // sharp's flop is the horizontal mirror (flip is vertical)
  const { data, info } = await image
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch(async (error: unknown) => {
      throw await overLimit(bytes, limit, error);
    });
  if (info.width !== size || info.height !== size || info.channels !== 3)
    throw new Error(`decodeImage: got ${info.width}×${info.height}×${info.channels}, expected ${size}×${size}×3`);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * sharp's "Input image exceeds pixel limit" as an `ImageTooLargeError` with the declared size (read
 * from the header again, without the limit); any other error as it is.
 */
async function overLimit(bytes: Uint8Array, limit: number, error: unknown): Promise<unknown> {
  if (!(error instanceof Error && error.message.includes('exceeds pixel limit'))) return error;
  const meta = await sharp(bytes, { limitInputPixels: false })
    .metadata()
    .catch(() => undefined);
  if (meta?.width === undefined || meta.height === undefined) return error;
  return new ImageTooLargeError(meta.width, meta.height, limit, { cause: error });
}

export interface VideoClipOptions {
  /** Frames in the clip (default 16, as in the paper). */
  frames?: number;
  /** Take every `stride`-th frame (default 4, as in the paper). */
  stride?: number;
  /** Index of the clip's first frame in the video (default 0). */
  start?: number;
  /** Mirror left–right. */
  flip?: boolean;
  /** The ffmpeg binary (default `MDM_FFMPEG`, else `ffmpeg` on PATH). */
  ffmpeg?: string;
}

/** The ffmpeg binary to run: the option, else `MDM_FFMPEG`, else `ffmpeg` on PATH. */
export function ffmpegBinary(ffmpeg?: string): string {
  return ffmpeg ?? process.env.MDM_FFMPEG ?? 'ffmpeg';
}

function ffmpegMissing(binary: string): DataError {
  return new DataError(
    `ffmpeg not found: install it (Debian: apt-get install ffmpeg) or set MDM_FFMPEG (tried '${binary}')`,
  );
}

const checked = new Map<string, string>();

/**
 * Checks once per binary that ffmpeg runs, so a video run fails at start rather than at its first
 * clip; returns the first line of `ffmpeg -version`. Throws "ffmpeg not found: install it (Debian:
 * apt-get install ffmpeg) or set MDM_FFMPEG" when it does not start or does not answer as ffmpeg.
 */
export function checkFfmpeg(ffmpeg?: string): string {
  const binary = ffmpegBinary(ffmpeg);
  const known = checked.get(binary);
  if (known !== undefined) return known;
  const result = spawnSync(binary, ['-hide_banner', '-version'], { encoding: 'utf8', timeout: 30_000 });
  const version = result.stdout?.split('\n')[0] ?? '';
  if (result.error || result.status !== 0 || !version.startsWith('ffmpeg')) throw ffmpegMissing(binary);
  checked.set(binary, version);
  return version;
}

/**
 * Decodes a clip of `frames` frames, every `stride`-th from frame `start`, to frames × size × size × 3
 * uint8, with one ffmpeg process: `select` keeps the frames, `scale` (lanczos, like the images)
 * brings the smaller side to `size` and `crop` centres — the image preprocessing, per frame. Throws
 * 'video too short' when the video has fewer frames than the clip needs, and an Error with ffmpeg's
 * message for an unreadable or corrupt file (callers count it).
 */
export async function decodeVideoClip(path: string, size: number, options: VideoClipOptions = {}): Promise<Uint8Array> {
  const { frames = 16, stride = 4, start = 0, flip = false } = options;
  for (const [name, value, min] of [
    ['size', size, 1],
    ['frames', frames, 1],
    ['stride', stride, 1],
    ['start', start, 0],
  ] as const)
    if (!(Number.isInteger(value) && value >= min))
      throw new Error(`decodeVideoClip: ${name} must be an integer ≥ ${min}, got ${value}`);
  const filters = [
    `select=gte(n\\,${start})*not(mod(n-${start}\\,${stride}))`,
    `scale=${size}:${size}:force_original_aspect_ratio=increase:flags=lanczos`,
    `crop=${size}:${size}`,
    ...(flip ? ['hflip'] : []),
  ];
  // -vsync 0 (passthrough): without it ffmpeg fills the gaps `select` leaves in the timestamps with
  // duplicated frames to keep the input frame rate, and the clip would repeat frames.
  const args = [
    '-v',
    'error',
    '-nostdin',
    '-i',
    path,
    '-vf',
    filters.join(','),
    '-vsync',
    '0',
    '-frames:v',
    String(frames),
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    'pipe:1',
  ];
  const out = await runFfmpeg(ffmpegBinary(options.ffmpeg), args);
  const frameBytes = size * size * 3;
  if (out.length < frames * frameBytes)
    throw new DataError(
      `video too short: ${path} gave ${Math.floor(out.length / frameBytes)} of ${frames} frames ` +
        `(stride ${stride} from frame ${start})`,
    );
  return out.subarray(0, frames * frameBytes);
}

/** Runs ffmpeg and collects its stdout; rejects with its stderr when it fails. */
function runFfmpeg(binary: string, args: string[]): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4000) stderr += chunk.toString('utf8');
    });
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' || error.code === 'EACCES' ? ffmpegMissing(binary) : error),
    );
    child.on('close', (code) => {
      if (code === 0) return resolve(new Uint8Array(Buffer.concat(chunks)));
      const path = args[args.indexOf('-i') + 1];
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      reject(new DataError(`unreadable video: ffmpeg failed on ${path} (exit ${code}): ${tail}`));
    });
  });
}
