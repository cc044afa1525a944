import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClipTokenizer } from '@matryoshka-ts/text-encoders';
import { seeded } from '@matryoshka-ts/test-utils';
import { DataError } from '@matryoshka-ts/core';
import { afterAll, describe, expect, it } from 'vitest';
import { type ClipModel, clipScore, clipScoreOfCosine, loadOnnxClip } from './clip-score.js';
import { type Uint8Image, clipPreprocess } from './resize.js';
import { writeTinyClip } from './test-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-clip-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const { D, E, P, vocab, merges } = writeTinyClip(dir);

function image(seed: number, width: number, height: number): Uint8Image {
  const r = seeded(seed);
  return {
    data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(r() * 256)),
    width,
    height,
    channels: 3,
  };
}

/** The tiny towers in float64 loops, from our tokenizer and CLIP preprocessing. */
function referenceCosine(img: Uint8Image, caption: string): number {
  const chw = clipPreprocess(img, 224).data;
  const plane = 224 * 224;
  const mean = [0, 1, 2].map((c) => chw.subarray(c * plane, (c + 1) * plane).reduce((s, v) => s + v, 0) / plane);
  const a = [0, 1, 2].map((k) => mean.reduce((s, m, c) => s + m * P[c * D + k], 0));
  const ids = new ClipTokenizer(vocab, merges).encodeBatch([caption]).ids;
  const t = [0, 1, 2].map((k) => ids.reduce((s, id) => s + E[id * D + k], 0) / ids.length);
  const dot = a.reduce((s, x, k) => s + x * t[k], 0);
  return dot / Math.hypot(...a) / Math.hypot(...t);
}

describe('CLIP score', () => {
  it('is 100·max(cos, 0) (torchmetrics) or 2.5·max(cos, 0) (CLIPScore)', () => {
    expect(clipScoreOfCosine(0.3, 'torchmetrics')).toBeCloseTo(30, 12);
    expect(clipScoreOfCosine(0.3, 'clipscore')).toBeCloseTo(0.75, 12);
    expect(clipScoreOfCosine(-0.2, 'torchmetrics')).toBe(0);
    expect(clipScoreOfCosine(-0.2, 'clipscore')).toBe(0);
  });

  it('runs local ONNX towers with the CLIP tokenizer and preprocessing, matching the towers in float64', async () => {
    const model = await loadOnnxClip(dir);
    expect(model.proxy).toBe(false);
    expect(model.id).toMatch(/^clip-onnx:vision_model\.onnx#\w{12}\+text_model\.onnx#\w{12}\+clip-bpe-v\d+-\w+@224$/);
    const images = [image(1, 64, 64), image(2, 300, 200), image(3, 50, 90)];
    const captions = ['a cat', 'the dog!', 'cat dog cat'];
    const result = await clipScore(model, images, captions, { batchSize: 2 });
    const want = images.map((img, i) => referenceCosine(img, captions[i]));
    // float32 towers vs float64 loops: cosines agree to ~1e-6.
    want.forEach((c, i) => expect(result.perPair[i]).toBeCloseTo(c, 5));
    expect(result.cosine).toBeCloseTo(want.reduce((s, c) => s + c, 0) / 3, 5);
    expect(result.score).toBeCloseTo(want.reduce((s, c) => s + 100 * Math.max(c, 0), 0) / 3, 3);
    const orig = await clipScore(model, images, captions, { definition: 'clipscore' });
    expect(orig.score).toBeCloseTo((result.score / 100) * 2.5, 6);
    await model.dispose();
  });

  it('refuses mismatched inputs and names missing files', async () => {
    const fake: ClipModel = {
      id: 'x',
      proxy: true,
      imageEmbeddings: async () => new Float32Array(0),
      textEmbeddings: async () => new Float32Array(0),
      dispose: () => {},
    };
    await expect(clipScore(fake, [image(1, 4, 4)], [])).rejects.toThrow(/1 images but 0 captions/);
    const empty = mkdtempSync(join(tmpdir(), 'mdm-clip-empty-'));
    await expect(loadOnnxClip(empty)).rejects.toThrow(/missing: vision_model\.onnx, text_model\.onnx/);
    const error = await loadOnnxClip(empty).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataError);
    expect(error).toMatchObject({
      code: 'DATA_INVALID',
      message:
        `${empty} needs vision_model.onnx and text_model.onnx (directly or under onnx/); missing: ` +
        'vision_model.onnx, text_model.onnx',
    });
    const nowhere = join(empty, 'nowhere');
    await expect(loadOnnxClip(nowhere)).rejects.toMatchObject({
      code: 'DATA_INVALID',
      message: `no CLIP model directory at ${nowhere}`,
    });
    rmSync(empty, { recursive: true });
  });
});
