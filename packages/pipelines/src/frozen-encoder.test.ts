import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyT5 } from '@matryoshka-ts/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { type TrainConfigInput, parseTrainConfig } from './config.js';
import { generate } from './generate.js';
import { openRun } from './open-run.js';
import { TRAIN_PRESETS } from './train-presets.js';
import { train } from './train.js';

// The pipelines run on the active backend; the deterministic pure-JS cpu backend here.
beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const dir = mkdtempSync(join(tmpdir(), 'mdm-frozen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A tiny "FLAN-T5" export: characters as unigram pieces, an embedding lookup 16 wide.
const D = 16;
const encoderDir = writeTinyT5(join(dir, 'tiny-t5'), { width: D, seed: 5 });
const cache = join(dir, 'text-cache');

// The micro preset (text features 16 wide, as D) with the ONNX encoder instead of hashed words.
const micro: TrainConfigInput = {
  ...TRAIN_PRESETS.micro,
  data: { skinTones: false, categories: ['Smileys & Emotion'] },
  conditioning: {
    kind: 'text',
    dropout: 0.5,
    encoder: { kind: 'onnx', path: encoderDir, width: D, maxTokens: 12, cache },
  },
  phases: [{ resolution: 8, batchSize: 2, steps: 3 }],
  sampling: { n: 2, steps: 2, sampler: 'ddim', threshold: 'clip' },
  backend: 'cpu',
};

describe('a frozen ONNX text encoder in training', () => {
  it('encodes every caption once into the disk cache, trains on it, samples new prompts once prepared', async () => {
    const out = join(dir, 'run');
    const result = await train(parseTrainConfig(micro), { out });
    expect(Number.isFinite(result.finalLoss)).toBe(true);
    expect(readdirSync(cache).filter((f) => f.endsWith('.tfc'))).toHaveLength(1);

    const run = await openRun(out);
    const encoder = run.conditioner.kind === 'text' ? run.conditioner.encoder : undefined;
    // The 169 smiley names (all distinct) and the empty caption of guidance.
    expect((encoder as unknown as { size: number }).size).toBe(170);
    const prompt = 'a brand new prompt';
    expect(() => encoder!.encode([prompt])).toThrow(/not prepared|a brand new prompt/);
    await run.prepare([prompt]);
    const images = await generate(run.model, run.params, run.schedules, run.conditioner, {
      captions: [prompt],
      labels: [0],
      steps: 2,
      sampler: 'ddim',
      eta: 0,
      guidance: 2,
      threshold: 'clip',
      prediction: run.config.loss.prediction,
      seed: 0,
    });
    expect(images[0].images[0].every((v) => Number.isFinite(v))).toBe(true);
    run.dispose();
  }, 300_000);

  it('refuses an encoder whose width is not the configured one', async () => {
    const config = parseTrainConfig({
      ...micro,
      model: {
        ...(micro.model as object),
        text: { featureDim: 8, projDim: 32, headLayers: 1, maskedCrossAttention: true },
      },
      conditioning: { kind: 'text', encoder: { kind: 'onnx', path: encoderDir, width: 8, cache } },
    } as TrainConfigInput);
    await expect(train(config, { out: join(dir, 'bad') })).rejects.toThrow(
      /conditioning\.encoder\.width is 8, but .* gives 16-wide features/,
    );
  }, 120_000);
});
