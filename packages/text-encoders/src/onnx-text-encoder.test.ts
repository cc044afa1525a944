import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError, DataError, isUserError } from '@matryoshka-ts/core';
import { ONNX_FLOAT, ONNX_INT64, onnxModel, seeded } from '@matryoshka-ts/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { bytesToUnicode } from './clip-tokenizer.js';
import { onnxModelFingerprint } from './model-fingerprint.js';
import { loadOnnxTextEncoder } from './onnx-text-encoder.js';
import { T5_PIECES, t5Id, t5TokenizerJson } from './t5-test-fixtures.js';
import { tokenizerFromDirectory } from './tokenizer-from-directory.js';

const root = mkdtempSync(join(tmpdir(), 'onnx-text-encoder-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const D = 3;
const V = T5_PIECES.length;
const rand = seeded(11);
/** The embedding table the tiny encoders gather from: row i is token i's feature. */
const E = Float32Array.from({ length: V * D }, () => Math.round((rand() * 2 - 1) * 64) / 16);
const row = (id: number) => Array.from(E.subarray(id * D, (id + 1) * D));

function dirWith(name: string, files: Record<string, string | Uint8Array>): string {
  const dir = join(root, name);
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), content);
  }
  return dir;
}

/** output = E[input_ids] · 2·attention_mask: real positions 2·E[id], so the mask fed must be 1 there. */
const maskedEncoder = onnxModel({
  inputs: [
    { name: 'input_ids', type: ONNX_INT64, shape: ['batch', 'sequence'] },
    { name: 'attention_mask', type: ONNX_INT64, shape: ['batch', 'sequence'] },
  ],
  // The width is symbolic here, so the loader learns it by running the model once.
  outputs: [{ name: 'last_hidden_state', type: ONNX_FLOAT, shape: ['batch', 'sequence', 'width'] }],
  initializers: [
    { name: 'E', dims: [V, D], data: E },
    { name: 'two', dims: [], data: new Float32Array([2]) },
    { name: 'axes', dims: [1], data: [2], type: ONNX_INT64 },
  ],
  nodes: [
    { op: 'Gather', inputs: ['E', 'input_ids'], outputs: ['g'], attributes: { axis: 0 } },
    { op: 'Cast', inputs: ['attention_mask'], outputs: ['m'], attributes: { to: ONNX_FLOAT } },
    { op: 'Mul', inputs: ['m', 'two'], outputs: ['m2'] },
    { op: 'Unsqueeze', inputs: ['m2', 'axes'], outputs: ['m3'] },
    { op: 'Mul', inputs: ['g', 'm3'], outputs: ['last_hidden_state'] },
  ],
});

/** output = E[input_ids], no mask input, fixed length: padding would show E[pad] unless zeroed. */
function plainEncoder(table: Float32Array, rows: number, length: number | string, outputName = 'last_hidden_state') {
  return onnxModel({
    inputs: [{ name: 'input_ids', type: ONNX_INT64, shape: ['batch', length] }],
    outputs: [{ name: outputName, type: ONNX_FLOAT, shape: ['batch', length, D] }],
    initializers: [{ name: 'E', dims: [rows, D], data: table }],
    nodes: [{ op: 'Gather', inputs: ['E', 'input_ids'], outputs: [outputName], attributes: { axis: 0 } }],
  });
}

const tokenizerJson = JSON.stringify(t5TokenizerJson());
const [HELLO, WOR, LD, S, EOS] = ['▁hello', '▁wor', 'ld', 's', '</s>'].map(t5Id);

/** Features [B, L, D] as nested arrays, and the mask as rows. */
function unpack(features: Float32Array, mask: Uint8Array, B: number, L: number) {
  const f = Array.from({ length: B }, (_, b) =>
    Array.from({ length: L }, (_, t) => Array.from(features.subarray((b * L + t) * D, (b * L + t + 1) * D))),
  );
  const m = Array.from({ length: B }, (_, b) => Array.from(mask.subarray(b * L, (b + 1) * L)));
  return { f, m };
}

describe('loadOnnxTextEncoder with a T5 tokenizer', () => {
  it('gives the features of the expected token ids, the mask, and zero padding', async () => {
    const dir = dirWith('t5-masked', { 'tokenizer.json': tokenizerJson, 'encoder_model.onnx': maskedEncoder });
    const enc = await loadOnnxTextEncoder(dir, { maxTokens: 6 });
    expect(enc.width).toBe(D);
    expect(enc.maxTokens).toBe(6);
    expect(enc.id).toMatch(/^onnx-text-v1:encoder_model\.onnx#[0-9a-f]{12}\+t5-unigram-v19-[0-9a-f]{12}@6$/);
    const { features, mask } = await enc.encodeAsync(['hello world', 'hellos', '']);
    expect(features).toHaveLength(3 * 6 * D);
    const { f, m } = unpack(features, mask, 3, 6);
    expect(m).toEqual([
      [1, 1, 1, 1, 0, 0],
      [1, 1, 1, 0, 0, 0],
      [1, 0, 0, 0, 0, 0],
    ]);
    const twice = (id: number) => row(id).map((v) => 2 * v);
    const zero = [0, 0, 0];
    expect(f[0]).toEqual([twice(HELLO), twice(WOR), twice(LD), twice(EOS), zero, zero]);
    expect(f[1]).toEqual([twice(HELLO), twice(S), twice(EOS), zero, zero, zero]);
    expect(f[2]).toEqual([twice(EOS), zero, zero, zero, zero, zero]);
    // A caption's features do not depend on its batch (the model sees only the longest row).
    const alone = await enc.encodeAsync(['hellos']);
    expect(Array.from(alone.features)).toEqual(Array.from(features.subarray(6 * D, 12 * D)));
    expect(await enc.encodeAsync([])).toEqual({ features: new Float32Array(0), mask: new Uint8Array(0) });
    await enc.dispose?.();
  });

  it('defaults to 128 tokens, truncating with </s> last', async () => {
    const dir = join(root, 't5-masked');
    const enc = await loadOnnxTextEncoder(dir);
    expect(enc.maxTokens).toBe(128);
    const short = await loadOnnxTextEncoder(dir, { maxTokens: 2 });
    const { features, mask } = await short.encodeAsync(['hello world']);
    const { f, m } = unpack(features, mask, 1, 2);
    expect(m).toEqual([[1, 1]]);
    expect(f[0][1]).toEqual(row(EOS).map((v) => 2 * v));
    expect(short.id).not.toBe(enc.id);
  });

  it('zeroes padding itself, for a fixed-length model without a mask input under onnx/', async () => {
    const dir = dirWith('t5-fixed', {
      'tokenizer.json': tokenizerJson,
      'onnx/text_model.onnx': plainEncoder(E, V, 5, 'hidden'),
    });
    // The fixed length 5 becomes maxTokens; the single output is taken whatever its name.
    const enc = await loadOnnxTextEncoder(dir);
    expect(enc.maxTokens).toBe(5);
    expect(enc.width).toBe(D);
    const { features, mask } = await enc.encodeAsync(['hellos', 'hello world']);
    const { f, m } = unpack(features, mask, 2, 5);
    expect(m).toEqual([
      [1, 1, 1, 0, 0],
      [1, 1, 1, 1, 0],
    ]);
    // E[pad] = E[0] is not zero, yet padded positions are.
    expect(row(0).some((v) => v !== 0)).toBe(true);
    expect(f[0]).toEqual([row(HELLO), row(S), row(EOS), [0, 0, 0], [0, 0, 0]]);
    expect(f[1][4]).toEqual([0, 0, 0]);
    await expect(loadOnnxTextEncoder(dir, { maxTokens: 7 })).rejects.toThrow(/fixed length 5; set maxTokens: 5/);
  });

  it('names what is missing or unexpected', async () => {
    const missing = join(root, 'nope');
    await expect(loadOnnxTextEncoder(missing)).rejects.toThrow(`no text encoder directory at ${missing}`);
    const noModel = dirWith('no-model', { 'tokenizer.json': tokenizerJson });
    await expect(loadOnnxTextEncoder(noModel)).rejects.toThrow(
      /has no ONNX text encoder: looked for encoder_model\.onnx, text_model\.onnx, model\.onnx/,
    );
    const noTokenizer = dirWith('no-tokenizer', { 'model.onnx': maskedEncoder });
    await expect(loadOnnxTextEncoder(noTokenizer)).rejects.toThrow(/has no tokenizer: expected tokenizer\.json/);
    const wordPiece = dirWith('wordpiece', {
      'tokenizer.json': JSON.stringify({ model: { type: 'WordPiece' } }),
      'model.onnx': maskedEncoder,
    });
    await expect(loadOnnxTextEncoder(wordPiece)).rejects.toThrow(
      /model\.type "WordPiece"; supported: "Unigram" \(T5\) and "BPE" \(CLIP\)/,
    );
    const dir = join(root, 't5-masked');
    await expect(loadOnnxTextEncoder(dir, { outputName: 'pooled' })).rejects.toThrow(
      /has no output 'pooled' \(it has last_hidden_state\)/,
    );
    await expect(loadOnnxTextEncoder(dir, { inputIdsName: 'ids' })).rejects.toThrow(
      /has no input 'ids' \(it has input_ids, attention_mask\)/,
    );
    await expect(loadOnnxTextEncoder(dir, { attentionMaskName: 'mask' })).rejects.toThrow(
      /also needs inputs attention_mask/,
    );
    await expect(loadOnnxTextEncoder(dir, { modelFile: 'other.onnx' })).rejects.toThrow(
      `no ONNX model at ${join(dir, 'other.onnx')}`,
    );
  });

  it('reports a missing directory, model or tokenizer as a DataError and a bad option as a ConfigError', async () => {
    const missing = join(root, 'absent');
    await expect(loadOnnxTextEncoder(missing)).rejects.toBeInstanceOf(DataError);
    await expect(loadOnnxTextEncoder(missing)).rejects.toMatchObject({ code: 'DATA_INVALID' });
    await expect(loadOnnxTextEncoder(missing)).rejects.toThrow(`no text encoder directory at ${missing}`);
    const noModel = dirWith('no-model-2', { 'tokenizer.json': tokenizerJson });
    await expect(loadOnnxTextEncoder(noModel)).rejects.toMatchObject({ name: 'DataError', code: 'DATA_INVALID' });
    const wordPiece = dirWith('wordpiece-2', {
      'tokenizer.json': JSON.stringify({ model: { type: 'WordPiece' } }),
      'model.onnx': maskedEncoder,
    });
    await expect(loadOnnxTextEncoder(wordPiece)).rejects.toMatchObject({ code: 'DATA_INVALID' });
    const dir = join(root, 't5-masked');
    await expect(loadOnnxTextEncoder(dir, { inputIdsName: 'ids' })).rejects.toBeInstanceOf(DataError);
    await expect(loadOnnxTextEncoder(dir, { maxTokens: 0 })).rejects.toBeInstanceOf(ConfigError);
    await expect(loadOnnxTextEncoder(dir, { maxTokens: 0 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(loadOnnxTextEncoder(dir, { maxTokens: 0 })).rejects.toThrow(
      /^loadOnnxTextEncoder: maxTokens must be a positive integer, got 0$/,
    );
    const broken = dirWith('broken-model', { 'tokenizer.json': tokenizerJson, 'model.onnx': 'not an onnx graph' });
    const error = await loadOnnxTextEncoder(broken).catch((e: unknown) => e);
    expect(isUserError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'DATA_INVALID' });
    expect((error as Error).message).toMatch(/^ONNX Runtime could not load .*model\.onnx: /);
  });

  // Where the CUDA provider libraries are installed, 'cuda' may work: nothing to check then.
  const ortDir = dirname(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')));
  const hasCudaProvider = existsSync(
    join(ortDir, 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so'),
  );
  it.skipIf(hasCudaProvider)("explains how to get CUDA when device: 'cuda' cannot start", async () => {
    await expect(loadOnnxTextEncoder(join(root, 't5-masked'), { device: 'cuda' })).rejects.toThrow(
      /ONNXRUNTIME_NODE_INSTALL=cuda12/,
    );
    const cuda = loadOnnxTextEncoder(join(root, 't5-masked'), { device: 'cuda' });
    await expect(cuda).rejects.toMatchObject({ name: 'BackendError', code: 'BACKEND_UNAVAILABLE' });
  });
});

describe('loadOnnxTextEncoder with a CLIP tokenizer', () => {
  // A tiny CLIP vocabulary (byte symbols, their </w> forms, two merges, the specials).
  const symbols = bytesToUnicode();
  const vocab: Record<string, number> = {};
  for (const s of [...symbols, ...symbols.map((x) => `${x}</w>`), 'ca', 'cat</w>', '<|startoftext|>', '<|endoftext|>'])
    vocab[s] = Object.keys(vocab).length;
  const CV = Object.keys(vocab).length;
  const table = Float32Array.from({ length: CV * D }, (_, i) => (i % 7) - 3 + Math.floor(i / D) / 100);

  it('reads vocab.json + merges.txt, defaults to 77 tokens and wraps captions in bos/eos', async () => {
    const dir = dirWith('clip', {
      'vocab.json': JSON.stringify(vocab),
      'merges.txt': '#version: 0.2\nc a\nca t</w>\n',
      'model.onnx': plainEncoder(table, CV, 'sequence'),
    });
    expect(tokenizerFromDirectory(dir).kind).toBe('clip');
    const enc = await loadOnnxTextEncoder(dir);
    expect(enc.maxTokens).toBe(77);
    expect(enc.id).toMatch(/\+clip-bpe-v516-[0-9a-f]{12}@77$/);
    const { features, mask } = await enc.encodeAsync(['a cat']);
    const expectedIds = [vocab['<|startoftext|>'], vocab['a</w>'], vocab['cat</w>'], vocab['<|endoftext|>']];
    expect(Array.from(mask.subarray(0, 6))).toEqual([1, 1, 1, 1, 0, 0]);
    expect(Array.from(features.subarray(0, 4 * D))).toEqual(
      expectedIds.flatMap((id) => Array.from(table.subarray(id * D, (id + 1) * D))),
    );
    expect(features.subarray(4 * D).every((v) => v === 0)).toBe(true);
  });
});

describe('onnxModelFingerprint', () => {
  it('hashes the graph and samples the external data files it names', () => {
    // A stand-in graph file holding an external_data entry { key: "location", value: "w.bin" }.
    const entry = Uint8Array.from([0x0a, 0x08, ...Buffer.from('location'), 0x12, 0x05, ...Buffer.from('w.bin')]);
    const graph = Buffer.concat([Buffer.alloc(100, 7), entry, Buffer.alloc(50, 1)]);
    const dir = dirWith('external', { 'encoder_model.onnx': graph, 'w.bin': Buffer.alloc(300_000, 3) });
    const path = join(dir, 'encoder_model.onnx');
    const first = onnxModelFingerprint(path);
    expect(first).toMatch(/^encoder_model\.onnx#[0-9a-f]{12}$/);
    expect(onnxModelFingerprint(path)).toBe(first);
    const changed = Buffer.alloc(300_000, 3);
    changed[0] = 9; // the first sampled block
    writeFileSync(join(dir, 'w.bin'), changed);
    expect(onnxModelFingerprint(path)).not.toBe(first);
    rmSync(join(dir, 'w.bin'));
    expect(() => onnxModelFingerprint(path)).toThrow(/keeps weights in w\.bin, which is missing/);
    expect(() => onnxModelFingerprint(path)).toThrow(DataError);
  });
});
