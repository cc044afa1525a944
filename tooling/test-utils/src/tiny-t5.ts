import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ONNX_FLOAT, ONNX_INT64, onnxModel } from './onnx-model.js';
import { seeded } from './random.js';

/**
 * Writes a tiny "FLAN-T5" export into `dir` (created) and returns `dir`: a unigram tokenizer over
 * single characters (`tokenizer.json`) and an encoder that looks each token up in a seeded
 * embedding table (`encoder_model.onnx`: Gather → last_hidden_state [B, L, width]). For tests of
 * frozen ONNX text encoders and their caches.
 */
export function writeTinyT5(dir: string, options: { width?: number; seed?: number } = {}): string {
  const width = options.width ?? 16;
  const chars = 'abcdefghijklmnopqrstuvwxyz';
  const pieces: Array<[string, number]> = [
    ['<pad>', 0],
    ['</s>', 0],
    ['<unk>', 0],
    ['▁', -2],
    ...[...chars].map((c): [string, number] => [c, -3]),
    ...[...chars].map((c): [string, number] => [`▁${c}`, -3.5]),
  ];
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'tokenizer.json'),
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
  const u = seeded(options.seed ?? 5);
  const table = Float32Array.from({ length: pieces.length * width }, () => u() - 0.5);
  writeFileSync(
    join(dir, 'encoder_model.onnx'),
    onnxModel({
      inputs: [
        { name: 'input_ids', type: ONNX_INT64, shape: ['b', 'l'] },
        { name: 'attention_mask', type: ONNX_INT64, shape: ['b', 'l'] },
      ],
      outputs: [{ name: 'last_hidden_state', type: ONNX_FLOAT, shape: ['b', 'l', width] }],
      initializers: [{ name: 'E', dims: [pieces.length, width], data: table }],
      nodes: [{ op: 'Gather', inputs: ['E', 'input_ids'], outputs: ['last_hidden_state'], attributes: { axis: 0 } }],
    }),
  );
  return dir;
}
