import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ONNX_FLOAT, ONNX_INT64, onnxModel, seeded } from '@matryoshka-ts/test-utils';
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

// A tiny "FLAN-T5" export: a unigram tokenizer over single characters and an encoder that looks
// each token up in an embedding table (Gather → last_hidden_state [B, L, D]).
const D = 16;
const chars = 'abcdefghijklmnopqrstuvwxyz';
const pieces: Array<[string, number]> = [
  ['<pad>', 0],
  ['</s>', 0],
  ['<unk>', 0],
  ['▁', -2],
  ...[...chars].map((c): [string, number] => [c, -3]),
  ...[...chars].map((c): [string, number] => [`▁${c}`, -3.5]),
];
const encoderDir = join(dir, 'tiny-t5');
mkdirSync(encoderDir);
writeFileSync(
  join(encoderDir, 'tokenizer.json'),
  JSON.stringify({
    version: '1.0',
    added_tokens: [0, 1, 2].map((id) => ({
      id,
      content: pieces[id][0],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }],
    },
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    model: { type: 'Unigram', unk_id: 2, vocab: pieces, byte_fallback: false },
  }),
);
const u = seeded(5);
writeFileSync(
  join(encoderDir, 'encoder_model.onnx'),
  onnxModel({
    inputs: [
      { name: 'input_ids', type: ONNX_INT64, shape: ['b', 'l'] },
      { name: 'attention_mask', type: ONNX_INT64, shape: ['b', 'l'] },
    ],
    outputs: [{ name: 'last_hidden_state', type: ONNX_FLOAT, shape: ['b', 'l', D] }],
    initializers: [
      { name: 'E', dims: [pieces.length, D], data: Float32Array.from({ length: pieces.length * D }, () => u() - 0.5) },
    ],
    nodes: [{ op: 'Gather', inputs: ['E', 'input_ids'], outputs: ['last_hidden_state'], attributes: { axis: 0 } }],
  }),
);
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
    const images = generate(run.model, run.params, run.schedules, run.conditioner, {
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
