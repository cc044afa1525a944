import { decodeImage, decodeVideoClip } from '../decode.js';
import { IMAGE_TOO_LARGE, ImageTooLargeError } from '../image-limit.js';
import type { ByteRange } from '../sources/source.js';
import { readRange } from '../sources/tar.js';

/** What a decode worker is asked to do with one sample: plain data, so it crosses threads. */
export interface DecodeTask {
  image: ByteRange;
  /** A video file: decode a clip of `frames` frames, every `stride`-th, from frame 0. */
  video: boolean;
  /** Output side in pixels (smaller side resized to it, then centre-cropped). */
  size: number;
  flip: boolean;
  frames: number;
  stride: number;
  /** The ffmpeg binary for videos (default: MDM_FFMPEG, else ffmpeg on PATH). */
  ffmpeg?: string;
  /** Most pixels an image may declare (default `MAX_INPUT_PIXELS`); a bigger one is skipped as 'image too large'. */
  maxPixels?: number;
}

/**
 * A decoded sample — `frames` images of size×size×3 uint8, one after another (1 for an image) —
 * or why it was skipped. `fatal` marks failures that are not the sample's fault (ffmpeg missing, a
 * crashed worker): every later sample would fail the same way, so the run must stop, not skip.
 */
export type DecodeOutcome =
  | { ok: true; pixels: Uint8Array; frames: number }
  | { ok: false; reason: string; message: string; fatal?: boolean };

/**
 * Decodes one task; never throws: a bad input becomes a skip with its reason ('unreadable file',
 * 'image too large' — its message names the file, the declared size and the limit —, 'corrupt
 * image'; for videos 'video too short', 'unreadable video').
 */
export async function runDecodeTask(task: DecodeTask): Promise<DecodeOutcome> {
  if (task.video) return decodeVideo(task);
  let bytes: Uint8Array;
  try {
    bytes = await readRange(task.image);
  } catch (error) {
    return skip('unreadable file', error);
  }
  try {
    const pixels = await decodeImage(bytes, task.size, { flip: task.flip, maxPixels: task.maxPixels });
    return { ok: true, pixels, frames: 1 };
  } catch (error) {
    if (error instanceof ImageTooLargeError)
      return { ok: false, reason: IMAGE_TOO_LARGE, message: `${task.image.path}: ${error.message}` };
    return skip('corrupt image', error);
  }
}

async function decodeVideo(task: DecodeTask): Promise<DecodeOutcome> {
  try {
    const pixels = await decodeVideoClip(task.image.path, task.size, {
      frames: task.frames,
      stride: task.stride,
      flip: task.flip,
      ffmpeg: task.ffmpeg,
    });
    return { ok: true, pixels, frames: task.frames };
  } catch (error) {
    const message = messageOf(error);
    if (message.startsWith('ffmpeg not found')) return { ok: false, reason: 'ffmpeg not found', message, fatal: true };
    return skip(message.startsWith('video too short') ? 'video too short' : 'unreadable video', error);
  }
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
const skip = (reason: string, error: unknown): DecodeOutcome => ({ ok: false, reason, message: messageOf(error) });
