import { ConfigError, DataError } from '@matryoshka-ts/core';
import type { Example, ImageDataset } from './dataset.js';
import { type EmojiOptions, emojiDownsampleFactor, listEmoji, readEmojiImage } from './emoji.js';
import { downsampleBox } from './png.js';

/** How an emoji moves over a bundled clip (see `loadEmojiClipDataset`). */
export type ClipMotion =
  | 'left-to-right'
  | 'right-to-left'
  | 'top-to-bottom'
  | 'bottom-to-top'
  | 'zoom-in'
  | 'zoom-out'
  | 'rotate-clockwise'
  | 'rotate-anticlockwise';

/** Every clip motion, in the order `loadEmojiClipDataset` deals them out to the emoji. */
export const CLIP_MOTIONS: readonly ClipMotion[] = Object.freeze([
  'left-to-right',
  'right-to-left',
  'top-to-bottom',
  'bottom-to-top',
  'zoom-in',
  'zoom-out',
  'rotate-clockwise',
  'rotate-anticlockwise',
] as const);

/** What each motion adds to the emoji's name in the caption. */
const MOTION_PHRASES: Record<ClipMotion, string> = {
  'left-to-right': 'moving from left to right',
  'right-to-left': 'moving from right to left',
  'top-to-bottom': 'moving from top to bottom',
  'bottom-to-top': 'moving from bottom to top',
  'zoom-in': 'zooming in',
  'zoom-out': 'zooming out',
  'rotate-clockwise': 'rotating clockwise',
  'rotate-anticlockwise': 'rotating anticlockwise',
};

export interface EmojiClipOptions extends Pick<EmojiOptions, 'skinTones' | 'categories' | 'packageDir'> {
  /** Square size of the frames (64 divided by a power of two; default 64). */
  resolution?: number;
  /** Frames per clip (an integer ≥ 2; default 16, the paper's clip length). */
  frames?: number;
  /** The motions to deal out (default all of `CLIP_MOTIONS`, in that order). */
  motions?: ClipMotion[];
}

/** Size of the bundled emoji images and of the canvas the clips are drawn on. */
const SIDE = 64;
/** Emoji scale while it moves across (its box touches the canvas edges at both ends). */
const TRANSLATE_SCALE = 0.6;
/** Emoji scale while it turns. */
const ROTATE_SCALE = 0.8;
/** Zoom range: the emoji's scale at the small end and at the large end (the full canvas). */
const ZOOM_FROM = 0.4;
const ZOOM_TO = 1;
/** How far a clip turns (a quarter turn: a full turn would look the same at both ends). */
const ROTATE_ANGLE = Math.PI / 2;

/** Where the emoji is in one frame: its centre on the canvas (px), scale, and clockwise angle (radians). */
interface Placement {
  cx: number;
  cy: number;
  scale: number;
  angle: number;
}

/** The placement of the emoji at time t ∈ [0, 1] of a clip (linear in t for every motion). */
function placement(motion: ClipMotion, t: number): Placement {
  const half = (TRANSLATE_SCALE * SIDE) / 2;
  const near = half; // centre with the box touching the near edge
  const far = SIDE - half;
  const mid = SIDE / 2;
  const across = near + (far - near) * t;
  const back = far + (near - far) * t;
  switch (motion) {
    case 'left-to-right':
      return { cx: across, cy: mid, scale: TRANSLATE_SCALE, angle: 0 };
    case 'right-to-left':
      return { cx: back, cy: mid, scale: TRANSLATE_SCALE, angle: 0 };
    case 'top-to-bottom':
      return { cx: mid, cy: across, scale: TRANSLATE_SCALE, angle: 0 };
    case 'bottom-to-top':
      return { cx: mid, cy: back, scale: TRANSLATE_SCALE, angle: 0 };
    case 'zoom-in':
      return { cx: mid, cy: mid, scale: ZOOM_FROM + (ZOOM_TO - ZOOM_FROM) * t, angle: 0 };
    case 'zoom-out':
      return { cx: mid, cy: mid, scale: ZOOM_TO + (ZOOM_FROM - ZOOM_TO) * t, angle: 0 };
    case 'rotate-clockwise':
      return { cx: mid, cy: mid, scale: ROTATE_SCALE, angle: ROTATE_ANGLE * t };
    case 'rotate-anticlockwise':
      return { cx: mid, cy: mid, scale: ROTATE_SCALE, angle: -ROTATE_ANGLE * t };
  }
}

/** Side of an emoji with a one-pixel white border, so bilinear taps need no bounds checks. */
const PADDED = SIDE + 2;

/** The 64×64 RGB emoji inside a white border one pixel wide: [66, 66, 3]. */
function padWhite(emoji: Uint8Array): Uint8Array {
  const padded = new Uint8Array(PADDED * PADDED * 3).fill(255);
  for (let y = 0; y < SIDE; y++) {
    padded.set(emoji.subarray(y * SIDE * 3, (y + 1) * SIDE * 3), ((y + 1) * PADDED + 1) * 3);
  }
  return padded;
}

/**
 * Draws the emoji (`padded` by `padWhite`) onto a white 64×64 canvas at `p` into `out`: each
 * canvas pixel centre is mapped back through the inverse affine map and the emoji sampled
 * bilinearly there, texels outside the emoji counting as white. (The emoji is already composited
 * on white, so this equals transforming its RGBA and compositing after.)
 */
function drawFrame(padded: Uint8Array, p: Placement, out: Uint8Array): void {
  const cos = Math.cos(p.angle) / p.scale;
  const sin = Math.sin(p.angle) / p.scale;
  const c = SIDE / 2;
  const row = PADDED * 3;
  for (let y = 0; y < SIDE; y++) {
    const dy = y + 0.5 - p.cy;
    for (let x = 0; x < SIDE; x++) {
      const dx = x + 0.5 - p.cx;
      // Source position in the emoji (pixel centres at k + 0.5): q = c + R(−angle)(p − centre) / scale.
      const fx = c + cos * dx + sin * dy - 0.5;
      const fy = c - sin * dx + cos * dy - 0.5;
      const x0 = Math.floor(fx);
      const y0 = Math.floor(fy);
      const o = (y * SIDE + x) * 3;
      if (x0 < -1 || y0 < -1 || x0 >= SIDE || y0 >= SIDE) {
        out[o] = 255;
        out[o + 1] = 255;
        out[o + 2] = 255;
        continue;
      }
      const wx = fx - x0;
      const wy = fy - y0;
      const w00 = (1 - wx) * (1 - wy);
      const w10 = wx * (1 - wy);
      const w01 = (1 - wx) * wy;
      const w11 = wx * wy;
      const t = ((y0 + 1) * PADDED + x0 + 1) * 3; // texel (x0, y0) in the padded emoji
      for (let ch = 0; ch < 3; ch++) {
        const v =
          padded[t + ch] * w00 + padded[t + 3 + ch] * w10 + padded[t + row + ch] * w01 + padded[t + row + 3 + ch] * w11;
        out[o + ch] = Math.min(255, Math.round(v));
      }
    }
  }
}

/**
 * Renders one clip of a 64×64 RGB emoji (composited on white): `frames` frames of the motion, drawn
 * at 64 px and box-downsampled to `resolution`, as [frames, resolution, resolution, 3] uint8.
 * Deterministic: the same inputs give the same bytes.
 */
export function renderEmojiClip(emoji: Uint8Array, motion: ClipMotion, frames: number, resolution: number): Uint8Array {
  if (emoji.length !== SIDE * SIDE * 3) {
    throw new RangeError(`emoji clips: expected a 64×64×3 emoji, got ${emoji.length} bytes`);
  }
  const factor = emojiDownsampleFactor(resolution, 'emoji clips');
  const frameBytes = resolution * resolution * 3;
  const clip = new Uint8Array(frames * frameBytes);
  const canvas = new Uint8Array(SIDE * SIDE * 3);
  const padded = padWhite(emoji);
  for (let f = 0; f < frames; f++) {
    drawFrame(padded, placement(motion, frames > 1 ? f / (frames - 1) : 0), canvas);
    clip.set(downsampleBox({ width: SIDE, height: SIDE, data: canvas }, factor).data, f * frameBytes);
  }
  return clip;
}

/**
 * The bundled default VIDEO data set: each Twemoji image (the emoji of `loadEmojiDataset`, decoded
 * the same way) made into a short clip of itself moving on a white canvas, so a video model trains
 * with no download. Example `i` has the motion `motions[i % motions.length]` (deterministic and
 * balanced; skin-tone variants of one emoji, which follow each other, get different motions):
 *
 * - `left-to-right`, `right-to-left`, `top-to-bottom`, `bottom-to-top`: the emoji at 60 % scale
 *   crosses the canvas along its middle, its 64 px box touching the near edge in the first frame and
 *   the far edge in the last (fully visible throughout);
 * - `zoom-in`, `zoom-out`: centred, scale 0.4 → 1.0 (or back);
 * - `rotate-clockwise`, `rotate-anticlockwise`: centred at 80 % scale, a quarter turn over the clip.
 *
 * Every motion is linear in time, from the first frame to the last. Frames are drawn at 64 px by an
 * inverse affine map with bilinear sampling (white outside the emoji), then box-downsampled to
 * `resolution`, so the lower resolutions are the 64 px clips averaged.
 *
 * Captions are the emoji name and the motion ("grinning face moving from left to right", "grinning
 * face zooming in", "grinning face rotating clockwise"); labels are the categories, as in
 * `loadEmojiDataset`. Examples are clips of `frames` frames ([frames, r, r, 3], frame-major), and the
 * data set's `frames` is set, so `nextBatch` gives [batchSize · frames, r, r, 3].
 *
 * Only the decoded 64 px emoji stay in memory (≈ 46 MB for all 3,786): each `get` renders its clip
 * anew (a few milliseconds at 64 px and 16 frames) and returns a fresh array; nothing is cached.
 */
export function loadEmojiClipDataset(options: EmojiClipOptions = {}): ImageDataset {
  const resolution = options.resolution ?? 64;
  emojiDownsampleFactor(resolution, 'emoji clips');
  const frames = options.frames ?? 16;
  if (!(Number.isInteger(frames) && frames >= 2)) {
    throw new ConfigError(`emoji clips: frames must be an integer ≥ 2, got ${frames}`);
  }
  const motions = options.motions ?? [...CLIP_MOTIONS];
  if (motions.length === 0) throw new ConfigError('emoji clips: motions must not be empty');
  const unknown = motions.filter((m) => !CLIP_MOTIONS.includes(m));
  if (unknown.length) {
    throw new ConfigError(
      `emoji clips: unknown motions ${JSON.stringify(unknown)}; available: ${CLIP_MOTIONS.join(', ')}`,
    );
  }
  const { classNames, items, imageDir, keep } = listEmoji(options);
  const skipped: Record<string, number> = {};
  const emoji: { pixels: Uint8Array; caption: string; label: number }[] = [];
  for (const item of items) {
    const rgb = readEmojiImage(imageDir, item, skipped);
    if (rgb) emoji.push({ pixels: rgb.data, caption: item.caption, label: item.label });
  }
  if (emoji.length === 0) throw new DataError(`emoji clips: no readable image under ${imageDir}`);
  const allMotions = motions.length === CLIP_MOTIONS.length && motions.every((m, i) => m === CLIP_MOTIONS[i]);
  return {
    id:
      `bundled-clips:emoji-twitter-16.0.0:${frames}f@${resolution}${options.skinTones === false ? '-noskin' : ''}` +
      `${keep ? `[${[...keep].join('|')}]` : ''}${allMotions ? '' : `{${motions.join('|')}}`}`,
    size: emoji.length,
    resolution,
    frames,
    classNames,
    skipped,
    get(index: number): Example {
      const e = emoji[index];
      if (e === undefined) throw new RangeError(`emoji clips: no example ${index} (${emoji.length} examples)`);
      const motion = motions[index % motions.length];
      return {
        image: renderEmojiClip(e.pixels, motion, frames, resolution),
        caption: `${e.caption} ${MOTION_PHRASES[motion]}`,
        label: e.label,
      };
    },
  };
}
