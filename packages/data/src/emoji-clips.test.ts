import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { ConfigError } from '@matryoshka-ts/core';
import { type DataPosition, type ImageDataset, epochOrder, nextBatch } from './dataset.js';
import { CLIP_MOTIONS, type ClipMotion, loadEmojiClipDataset, renderEmojiClip } from './emoji-clips.js';
import { loadEmojiDataset } from './emoji.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const CATEGORY = 'Activities'; // 85 emoji: quick to load

/** Frame `f` of a clip of `r`×`r` frames. */
function frameOf(clip: Uint8Array, r: number, f: number): Uint8Array {
  return clip.subarray(f * r * r * 3, (f + 1) * r * r * 3);
}

/** Ink (pixels visibly not white): how many, and their centroid in pixels (pixel centres at k + 0.5). */
function ink(frame: Uint8Array, r: number): { area: number; x: number; y: number } {
  let area = 0;
  let sx = 0;
  let sy = 0;
  for (let y = 0; y < r; y++)
    for (let x = 0; x < r; x++) {
      const o = (y * r + x) * 3;
      if (Math.min(frame[o], frame[o + 1], frame[o + 2]) < 235) {
        area += 1;
        sx += x + 0.5;
        sy += y + 0.5;
      }
    }
  return { area, x: sx / area, y: sy / area };
}

/** Whether two byte arrays hold the same bytes (much quicker than a deep `toEqual` on large arrays). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Mean absolute difference of two frames, per byte. */
function meanDifference(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += Math.abs(a[k] - b[k]);
  return s / a.length;
}

/** A one-motion clip set of the small category. */
function clips(motion: ClipMotion, resolution = 32, frames = 8): ImageDataset {
  return loadEmojiClipDataset({ categories: [CATEGORY], resolution, frames, motions: [motion] });
}

describe('the bundled emoji clip data set', () => {
  let data: ImageDataset;
  let images: ImageDataset;
  beforeAll(() => {
    data = loadEmojiClipDataset({ categories: [CATEGORY], resolution: 16 });
    images = loadEmojiDataset({ categories: [CATEGORY], resolution: 16 });
  });

  it('holds one 16-frame clip per emoji, with the image set’s emoji, labels and class names', () => {
    expect(data.size).toBe(85);
    expect(data.size).toBe(images.size);
    expect(data.frames).toBe(16);
    expect(data.resolution).toBe(16);
    expect(data.skipped).toEqual({});
    expect(data.classNames).toEqual(images.classNames);
    for (let i = 0; i < data.size; i += 7) {
      const clip = data.get(i);
      expect(clip.image).toBeInstanceOf(Uint8Array);
      expect(clip.image.length).toBe(16 * 16 * 16 * 3);
      expect(clip.label).toBe(images.get(i).label);
      expect(data.classNames[clip.label]).toBe(CATEGORY);
    }
    expect(data.id).toBe(`bundled-clips:emoji-twitter-16.0.0:16f@16[${CATEGORY}]`);
    expect(data.id).not.toBe(images.id);
    const other = loadEmojiClipDataset({ categories: [CATEGORY], resolution: 16, frames: 4, motions: ['zoom-in'] });
    expect(other.id).toBe(`bundled-clips:emoji-twitter-16.0.0:4f@16[${CATEGORY}]{zoom-in}`);
    expect(other.get(0).image.length).toBe(4 * 16 * 16 * 3);
    expect(() => data.get(data.size)).toThrow(RangeError);
  });

  it('deals the motions out in turn and says them in the captions', () => {
    const phrases: Record<ClipMotion, string> = {
      'left-to-right': 'moving from left to right',
      'right-to-left': 'moving from right to left',
      'top-to-bottom': 'moving from top to bottom',
      'bottom-to-top': 'moving from bottom to top',
      'zoom-in': 'zooming in',
      'zoom-out': 'zooming out',
      'rotate-clockwise': 'rotating clockwise',
      'rotate-anticlockwise': 'rotating anticlockwise',
    };
    expect([...CLIP_MOTIONS]).toEqual(Object.keys(phrases));
    for (let i = 0; i < data.size; i++) {
      const motion = CLIP_MOTIONS[i % CLIP_MOTIONS.length];
      expect(data.get(i).caption).toBe(`${images.get(i).caption} ${phrases[motion]}`);
    }
    const two = loadEmojiClipDataset({
      categories: [CATEGORY],
      resolution: 16,
      motions: ['zoom-out', 'rotate-clockwise'],
    });
    expect(two.get(0).caption).toMatch(/ zooming out$/);
    expect(two.get(1).caption).toMatch(/ rotating clockwise$/);
    expect(two.get(2).caption).toMatch(/ zooming out$/);
    const full = loadEmojiClipDataset({
      resolution: 16,
      categories: ['Smileys & Emotion'],
      motions: ['left-to-right'],
    });
    expect(full.get(0).caption).toBe('grinning face moving from left to right');
  });

  it('is deterministic: two loads render the same bytes', () => {
    const again = loadEmojiClipDataset({ categories: [CATEGORY], resolution: 16 });
    for (let i = 0; i < data.size; i += 5) {
      const a = data.get(i);
      const b = again.get(i);
      expect({ caption: b.caption, label: b.label }).toEqual({ caption: a.caption, label: a.label });
      expect(sameBytes(b.image, a.image)).toBe(true);
      expect(sameBytes(data.get(i).image, a.image)).toBe(true);
      expect(data.get(i).image).not.toBe(a.image); // rendered anew, nothing shared
    }
  });

  it('starts a zoom-out at the emoji itself, at every resolution (drawn at 64 px, then box-downsampled)', () => {
    for (const resolution of [64, 16]) {
      const zoomOut = loadEmojiClipDataset({ categories: [CATEGORY], resolution, frames: 2, motions: ['zoom-out'] });
      const still = loadEmojiDataset({ categories: [CATEGORY], resolution });
      for (const i of [0, 10, 40]) {
        expect(sameBytes(frameOf(zoomOut.get(i).image, resolution, 0), still.get(i).image)).toBe(true);
        expect(sameBytes(frameOf(zoomOut.get(i).image, resolution, 1), still.get(i).image)).toBe(false);
      }
    }
  });

  it('rejects a bad resolution, frame count or motion with a ConfigError', () => {
    expect(() => loadEmojiClipDataset({ resolution: 48 })).toThrow(ConfigError);
    expect(() => loadEmojiClipDataset({ resolution: 48 })).toThrow(
      'emoji clips: resolution must be 64 divided by a power of two, got 48',
    );
    for (const frames of [1, 0, 2.5]) {
      expect(() => loadEmojiClipDataset({ categories: [CATEGORY], frames })).toThrow(/frames must be an integer ≥ 2/);
    }
    expect(() => loadEmojiClipDataset({ categories: [CATEGORY], motions: [] })).toThrow(ConfigError);
    expect(() => loadEmojiClipDataset({ categories: [CATEGORY], motions: ['spin' as ClipMotion] })).toThrow(
      /unknown motions \["spin"\]/,
    );
    expect(() => loadEmojiClipDataset({ categories: ['Faces'] })).toThrow(/unknown categories/);
  });
});

describe('clip motions', () => {
  const r = 32;
  const F = 8;

  it('moves the emoji across, fully visible at both ends', () => {
    for (const [motion, axis, sign] of [
      ['left-to-right', 'x', 1],
      ['right-to-left', 'x', -1],
      ['top-to-bottom', 'y', 1],
      ['bottom-to-top', 'y', -1],
    ] as const) {
      const set = clips(motion, r, F);
      for (let i = 0; i < set.size; i += 9) {
        const clip = set.get(i).image;
        const first = ink(frameOf(clip, r, 0), r);
        const middle = ink(frameOf(clip, r, F / 2), r);
        const last = ink(frameOf(clip, r, F - 1), r);
        const other = axis === 'x' ? 'y' : 'x';
        // The path is 40 % of the canvas (12.8 px at 32 px).
        expect(sign * (last[axis] - first[axis]), `${motion} #${i}`).toBeGreaterThan(10);
        expect(sign * (middle[axis] - first[axis])).toBeGreaterThan(3);
        expect(Math.abs(last[other] - first[other])).toBeLessThan(0.5);
        // Not cut off at either end: about the same ink as in the middle.
        expect(first.area / middle.area).toBeGreaterThan(0.9);
        expect(last.area / middle.area).toBeGreaterThan(0.9);
        expect(first.area / middle.area).toBeLessThan(1.1);
        expect(last.area / middle.area).toBeLessThan(1.1);
      }
    }
  });

  it('zooms in and out about the centre', () => {
    const zoomIn = clips('zoom-in', r, F);
    const zoomOut = clips('zoom-out', r, F);
    for (let i = 0; i < zoomIn.size; i += 9) {
      const areas = Array.from({ length: F }, (_, f) => ink(frameOf(zoomIn.get(i).image, r, f), r).area);
      for (let f = 1; f < F; f++) expect(areas[f]).toBeGreaterThanOrEqual(areas[f - 1]);
      expect(areas[F - 1]).toBeGreaterThan(3 * areas[0]); // scale 0.4 → 1: area × 6.25 (less the blur)
      const out = zoomOut.get(i).image;
      expect(ink(frameOf(out, r, 0), r).area).toBe(areas[F - 1]);
      expect(ink(frameOf(out, r, F - 1), r).area).toBe(areas[0]);
    }
  });

  it('turns the emoji a quarter turn about the centre', () => {
    const cw = clips('rotate-clockwise', r, F);
    const ccw = clips('rotate-anticlockwise', r, F);
    let ends = 0;
    let apart = 0;
    for (let i = 0; i < cw.size; i += 9) {
      const clip = cw.get(i).image;
      const first = ink(frameOf(clip, r, 0), r);
      const last = ink(frameOf(clip, r, F - 1), r);
      const radius = (p: { x: number; y: number }) => Math.hypot(p.x - r / 2, p.y - r / 2);
      for (let f = 0; f < F; f++) {
        const p = ink(frameOf(clip, r, f), r);
        expect(radius(p), `#${i} frame ${f}`).toBeLessThan(4); // emoji are drawn about the middle of their box
        expect(Math.abs(radius(p) - radius(first))).toBeLessThan(1); // rotation keeps the distance
        expect(p.area / first.area).toBeGreaterThan(0.85);
        expect(p.area / first.area).toBeLessThan(1.15);
      }
      expect(meanDifference(frameOf(clip, r, F - 1), frameOf(clip, r, 0)), `#${i}`).toBeGreaterThan(0.5);
      // Both directions start from the same frame and end a half turn apart (the same for an emoji
      // symmetric under a half turn, such as a ball).
      const other = ccw.get(i).image;
      expect(sameBytes(frameOf(other, r, 0), frameOf(clip, r, 0))).toBe(true);
      expect(last.area).toBeGreaterThan(0);
      ends += 1;
      if (meanDifference(frameOf(other, r, F - 1), frameOf(clip, r, F - 1)) > 2) apart += 1;
    }
    expect(apart).toBeGreaterThan(ends / 2);
  });

  it('draws a synthetic square where the motion says, at 64 px', () => {
    // A black 16×16 square in the middle of a white 64×64 "emoji".
    const square = new Uint8Array(64 * 64 * 3).fill(255);
    for (let y = 24; y < 40; y++) square.fill(0, (y * 64 + 24) * 3, (y * 64 + 40) * 3);
    const at = (motion: ClipMotion, f: number) => ink(frameOf(renderEmojiClip(square, motion, 5, 64), 64, f), 64);
    // Left to right at 60 % scale: centre from 19.2 px (box touching the left edge) to 44.8 px.
    expect(at('left-to-right', 0).x).toBeCloseTo(19.2, 0);
    expect(at('left-to-right', 4).x).toBeCloseTo(44.8, 0);
    expect(at('left-to-right', 2).x).toBeCloseTo(32, 5);
    expect(at('bottom-to-top', 0).y).toBeCloseTo(44.8, 0);
    expect(at('bottom-to-top', 0).x).toBeCloseTo(32, 5);
    // Zoom: the 16 px square becomes 6.4 px (scale 0.4) and 16 px (scale 1).
    expect(Math.sqrt(at('zoom-in', 0).area)).toBeGreaterThan(5);
    expect(Math.sqrt(at('zoom-in', 0).area)).toBeLessThan(9);
    expect(at('zoom-in', 4).area).toBe(16 * 16);
    // A quarter turn of a centred square at 80 % scale: the same square (12.8 px) at both ends; 45° in the middle.
    const end = frameOf(renderEmojiClip(square, 'rotate-clockwise', 5, 64), 64, 4);
    const start = frameOf(renderEmojiClip(square, 'rotate-clockwise', 5, 64), 64, 0);
    expect(Math.max(...Array.from(end, (v, k) => Math.abs(v - start[k])))).toBeLessThanOrEqual(1);
    expect(at('rotate-clockwise', 2).x).toBeCloseTo(32, 5);
    expect(() => renderEmojiClip(new Uint8Array(10), 'zoom-in', 4, 64)).toThrow(/64×64×3/);
  });

  it('turns clockwise on screen for rotate-clockwise', () => {
    // A dot right of centre (at 3 o'clock) ends below the centre (6 o'clock) after a clockwise quarter turn.
    const dot = new Uint8Array(64 * 64 * 3).fill(255);
    for (let y = 30; y < 34; y++) dot.fill(0, (y * 64 + 50) * 3, (y * 64 + 54) * 3);
    const cw = ink(frameOf(renderEmojiClip(dot, 'rotate-clockwise', 3, 64), 64, 2), 64);
    const ccw = ink(frameOf(renderEmojiClip(dot, 'rotate-anticlockwise', 3, 64), 64, 2), 64);
    expect(cw.x).toBeCloseTo(32, 0);
    expect(cw.y).toBeGreaterThan(45);
    expect(ccw.x).toBeCloseTo(32, 0);
    expect(ccw.y).toBeLessThan(19);
  });
});

describe('batches of clips', () => {
  it('gives [B·F, r, r, 3] in [−1, 1], each sample’s frames in order, one caption per sample', () => {
    const before = tf.memory().numTensors;
    const F = 4;
    const r = 16;
    const data = loadEmojiClipDataset({ categories: [CATEGORY], resolution: r, frames: F });
    const pos: DataPosition = { epoch: 0, cursor: 0 };
    const B = 3;
    const batch = nextBatch(data, B, 5, pos);
    expect(batch.images.shape).toEqual([B * F, r, r, 3]);
    expect(batch.captions.length).toBe(B);
    expect(batch.labels.length).toBe(B);
    expect(pos).toEqual({ epoch: 0, cursor: B });
    const px = batch.images.dataSync();
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const v of px) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBeGreaterThanOrEqual(-1);
    expect(hi).toBeLessThanOrEqual(1);
    const order = epochOrder(data.size, 5, 0);
    const frame = r * r * 3;
    for (let b = 0; b < B; b++) {
      const example = data.get(order[b]);
      expect(batch.captions[b]).toBe(example.caption);
      for (let f = 0; f < F; f++) {
        const row = px.subarray((b * F + f) * frame, (b * F + f + 1) * frame);
        const expected = Float32Array.from(frameOf(example.image, r, f), (v) => v / 127.5 - 1);
        expect(row).toEqual(expected);
      }
    }
    // The same samples in the same order as an image data set of the same size.
    const stills = loadEmojiDataset({ categories: [CATEGORY], resolution: r });
    const still = nextBatch(stills, B, 5, { epoch: 0, cursor: 0 });
    expect(still.images.shape).toEqual([B, r, r, 3]);
    expect(still.labels).toEqual(batch.labels);
    tf.dispose([batch.images, still.images]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects a clip example of the wrong length', () => {
    const bad: ImageDataset = {
      id: 'bad',
      size: 2,
      resolution: 1,
      frames: 3,
      classNames: ['a'],
      skipped: {},
      get: () => ({ image: new Uint8Array(3), caption: 'x', label: 0 }),
    };
    const before = tf.memory().numTensors;
    expect(() => nextBatch(bad, 1, 0, { epoch: 0, cursor: 0 })).toThrow(/expected 9 \(3 frames of 1×1×3\)/);
    expect(() => nextBatch({ ...bad, frames: 0 }, 1, 0, { epoch: 0, cursor: 0 })).toThrow(/positive integer/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('leaves image batches (frames 1 or unset) as they were', () => {
    const before = tf.memory().numTensors;
    const r = 2;
    const tiny: ImageDataset = {
      id: 'tiny-images',
      size: 7,
      resolution: r,
      classNames: ['a', 'b'],
      skipped: {},
      get: (i) => ({
        image: Uint8Array.from({ length: r * r * 3 }, (_, k) => (i * 37 + k * 11) % 256),
        caption: `item ${i}`,
        label: i % 2,
      }),
    };
    const pos: DataPosition = { epoch: 0, cursor: 5 };
    const batch = nextBatch(tiny, 4, 3, pos); // crosses into epoch 1
    expect(pos).toEqual({ epoch: 1, cursor: 2 });
    const explicit = nextBatch({ ...tiny, frames: 1 }, 4, 3, { epoch: 0, cursor: 5 });
    // By hand: samples 5, 6 of epoch 0's order, then 0, 1 of epoch 1's.
    const e0 = epochOrder(7, 3, 0);
    const e1 = epochOrder(7, 3, 1);
    const indices = [e0[5], e0[6], e1[0], e1[1]];
    const expected = new Float32Array(4 * r * r * 3);
    indices.forEach((index, b) => {
      tiny.get(index).image.forEach((v, k) => {
        expected[b * r * r * 3 + k] = v / 127.5 - 1;
      });
    });
    expect(batch.images.shape).toEqual([4, r, r, 3]);
    expect(batch.images.dataSync()).toEqual(expected);
    expect(batch.captions).toEqual(indices.map((i) => `item ${i}`));
    expect(batch.labels).toEqual(indices.map((i) => i % 2));
    expect(explicit.images.shape).toEqual([4, r, r, 3]);
    expect(explicit.images.dataSync()).toEqual(expected);
    expect(explicit.captions).toEqual(batch.captions);
    tf.dispose([batch.images, explicit.images]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
