import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { AutoencoderKL, autoencoderPreset, exportAutoencoderStateDict } from '@matryoshka-ts/autoencoder';
import { writeSafetensors } from '@matryoshka-ts/checkpoint';
import { writeTinyT5 } from '@matryoshka-ts/test-utils';
import { type TrainConfig, type TrainConfigInput, modelConfigOf } from './config.js';
import { openConditioner } from './frozen-encoder.js';
import { fillRunCaches, runCaptions } from './run-caches.js';
import { parseRunConfig, runStages } from './stages.js';
import { TRAIN_PRESETS } from './train-presets.js';

const TRAIN_MICRO = TRAIN_PRESETS.micro;

// The deterministic pure-JS cpu backend: its encodings do not depend on how samples are batched,
// so shards merged give the bytes of one process.
beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});
const dir = mkdtempSync(join(tmpdir(), 'mdm-run-caches-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A tiny "FLAN-T5" export: characters as unigram pieces, an embedding lookup 16 wide.
const D = 16;
const encoderDir = writeTinyT5(join(dir, 'tiny-t5'), { width: D, seed: 11 });

// Pretrained weights of a small f = 2 autoencoder (8 px images, 4×4×4 latents).
const weights = join(dir, 'ae.safetensors');
beforeAll(() => {
  const ae = new AutoencoderKL(autoencoderPreset('kl-f8', { ch: 32, chMult: [1, 2], numResBlocks: 1, resolution: 8 }));
  writeSafetensors(weights, exportAutoencoderStateDict(ae.specs, 2, ae.getWeights()));
  ae.dispose();
});

/** A latent run on the 5 images of the Component category, text-conditioned through the ONNX encoder. */
const config = (textCache: string): TrainConfig =>
  parseRunConfig({
    data: { skinTones: false, categories: ['Component'] },
    conditioning: {
      kind: 'text',
      dropout: 0.5,
      encoder: { kind: 'onnx', path: encoderDir, width: D, maxTokens: 6, cache: textCache },
    },
    model: {
      kind: 'latent',
      autoencoder: { preset: 'kl-f8', ch: 32, chMult: [1, 2], numResBlocks: 1, weights },
      diffusion: {
        resolution: 4,
        channels: [32],
        resBlocks: [1],
        groups: 8,
        timeEmbedDim: 32,
        text: { featureDim: D, projDim: 32, headLayers: 0, maskedCrossAttention: true },
      },
    },
    phases: [{ resolution: 4, batchSize: 2, steps: 1 }],
    sampling: { n: 2, steps: 2, sampler: 'ddim' },
    backend: 'cpu',
  } as TrainConfigInput);

/** Every file of a run's latent cache and of a text cache, by name (the key directory's name included). */
function cacheFiles(out: string, textCache: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const latents = join(out, 'latents');
  for (const key of readdirSync(latents))
    for (const f of readdirSync(join(latents, key)))
      files.set(`latents/${key}/${f}`, readFileSync(join(latents, key, f)));
  for (const f of readdirSync(textCache)) files.set(`text/${f}`, readFileSync(join(textCache, f)));
  return files;
}

const shard = (index: number) => ({ index, count: 3 });

describe('mdm-train cache: filling a run’s caches whole or in shards', () => {
  it('n = 3 shards then a merge equal one process byte for byte; a missing part is reported and encoded', async () => {
    const before = tf.memory().numTensors;
    const oneText = join(dir, 'one-text');
    const one = await fillRunCaches(config(oneText), join(dir, 'one'));
    expect(one.map((s) => [s.cache, s.total, s.encoded, s.present])).toEqual([
      ['latents', 5, 5, 0],
      // The 5 captions and the empty one (guidance).
      ['text-features', 6, 6, 0],
    ]);
    const reference = cacheFiles(join(dir, 'one'), oneText);
    expect([...reference.keys()].map((k) => k.replace(/\/[0-9a-f]{32}\//, '/<key>/'))).toEqual([
      'latents/<key>/latents.bin',
      'latents/<key>/meta.json',
      expect.stringMatching(/^text\/.*\.tfc$/),
    ]);

    // Shards in any order, one of them run twice (it finds its part complete).
    const outB = join(dir, 'sharded');
    const textB = join(dir, 'sharded-text');
    const lines: string[] = [];
    const parts = [];
    for (const i of [2, 0, 1, 1])
      parts.push(await fillRunCaches(config(textB), outB, { shard: shard(i), log: (l) => lines.push(l) }));
    expect(parts.map((p) => p.map((s) => [s.shard, s.total, s.encoded, s.present]))).toEqual([
      // Samples 3–4; the sorted distinct captions 4–5.
      [
        ['2/3', 2, 2, 0],
        ['2/3', 2, 2, 0],
      ],
      [
        ['0/3', 1, 1, 0],
        ['0/3', 2, 2, 0],
      ],
      [
        ['1/3', 2, 2, 0],
        ['1/3', 2, 2, 0],
      ],
      [
        ['1/3', 2, 0, 2],
        ['1/3', 2, 0, 2],
      ],
    ]);
    const merged = await fillRunCaches(config(textB), outB);
    expect(merged.map((s) => [s.cache, s.encoded, s.present, s.merged, s.missing, s.foreign])).toEqual([
      ['latents', 0, 5, ['0/3', '1/3', '2/3'], [], []],
      ['text-features', 0, 6, ['0/3', '1/3', '2/3'], [], []],
    ]);
    expect(cacheFiles(outB, textB)).toEqual(reference);

    // Part 1/3 never ran: reported, and its samples and captions encoded by the merge.
    const outC = join(dir, 'missing');
    const textC = join(dir, 'missing-text');
    for (const i of [0, 2]) await fillRunCaches(config(textC), outC, { shard: shard(i) });
    const warned: string[] = [];
    const filled = await fillRunCaches(config(textC), outC, { log: (l) => warned.push(l) });
    expect(filled.map((s) => [s.cache, s.encoded, s.merged, s.missing])).toEqual([
      ['latents', 2, ['0/3', '2/3'], ['1/3']],
      ['text-features', 2, ['0/3', '2/3'], ['1/3']],
    ]);
    expect(warned).toContain('latent cache: part 1/3 is missing: its samples are encoded here');
    expect(warned).toContain('text encoder: part 1/3 is missing: its captions are encoded here');
    expect(cacheFiles(outC, textC)).toEqual(reference);
    expect(tf.memory().numTensors).toBe(before);
  }, 240_000);

  it('training folds the parts in when it prepares the text encoder', async () => {
    const text = join(dir, 'training-text');
    const out = join(dir, 'training');
    for (const i of [0, 1, 2]) await fillRunCaches(config(text), out, { shard: shard(i) });
    const stage = runStages(config(text))[1];
    if (stage.kind !== 'diffusion') throw new Error('expected the diffusion stage');
    const lines: string[] = [];
    const conditioner = await openConditioner(stage.config, modelConfigOf(stage.config), (l) => lines.push(l));
    if (conditioner.kind !== 'text' || !conditioner.prepare) throw new Error('expected a frozen text encoder');
    await conditioner.prepare(await runCaptions(config(text)));
    expect(lines.some((l) => /merged parts 0\/3, 1\/3, 2\/3 \(6 captions\)/.test(l))).toBe(true);
    expect(lines.some((l) => /encoded/.test(l))).toBe(false);
    expect(readdirSync(text).filter((f) => f.includes('.part-'))).toEqual([]);
  }, 120_000);

  it('refuses a run with nothing to cache', async () => {
    const plain = parseRunConfig({ ...(TRAIN_MICRO as object), backend: 'cpu' } as TrainConfigInput);
    await expect(fillRunCaches(plain, join(dir, 'plain'))).rejects.toThrow(/nothing to cache: .*hashed-words/);
  });
});
