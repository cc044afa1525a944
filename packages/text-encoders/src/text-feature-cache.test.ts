import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@matryoshka-ts/backends';
import { DataError, isUserError } from '@matryoshka-ts/core';
import { ONNX_FLOAT, ONNX_INT64, onnxModel } from '@matryoshka-ts/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOnnxTextEncoder } from './onnx-text-encoder.js';
import { T5_PIECES, t5TokenizerJson } from './t5-test-fixtures.js';
import type { AsyncTextEncoder, EncodedTextArrays } from './text-encoder.js';
import { TextFeatureCache, type TextFeaturePart, captionListDigest } from './text-feature-cache.js';

const root = mkdtempSync(join(tmpdir(), 'text-feature-cache-'));
beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const L = 5;
const D = 4;

/**
 * A deterministic stand-in for a frozen encoder that records its calls: one token per word
 * (at most L), features from the word's characters. "gap" leaves a hole in the mask, so the
 * cache must not assume the real tokens come first.
 */
class FakeEncoder implements AsyncTextEncoder {
  readonly calls: string[][] = [];
  readonly maxTokens = L;
  constructor(
    readonly id = 'fake-encoder-v1',
    readonly width = D,
  ) {}

  async encodeAsync(captions: string[]): Promise<EncodedTextArrays> {
    this.calls.push([...captions]);
    return expected(captions, this.width);
  }
}

function expected(captions: string[], width = D): EncodedTextArrays {
  const features = new Float32Array(captions.length * L * width);
  const mask = new Uint8Array(captions.length * L);
  captions.forEach((caption, b) => {
    const words = caption === 'gap' ? ['g', '', 'p'] : caption.split(' ').slice(0, L);
    words.forEach((word, t) => {
      if (word === '') return;
      mask[b * L + t] = 1;
      for (let d = 0; d < width; d++)
        features[(b * L + t) * width + d] = (word.codePointAt(d % word.length) ?? 0) / 7 + t - d / 3;
    });
  });
  return { features, mask };
}

/** The cache's tensors as arrays, disposing them. */
function read(cache: TextFeatureCache, captions: string[]) {
  const { tokens, mask } = cache.encode(captions);
  const out = { tokens: Array.from(tokens.dataSync()), mask: Array.from(mask.dataSync()), shape: tokens.shape };
  tf.dispose([tokens, mask]);
  return out;
}

function want(captions: string[]) {
  const { features, mask } = expected(captions);
  return { tokens: Array.from(features), mask: Array.from(mask), shape: [captions.length, L, D] };
}

describe('TextFeatureCache', () => {
  const dir = join(root, 'cache');

  it('runs the encoder only on captions it has not stored', async () => {
    const enc = new FakeEncoder();
    const cache = TextFeatureCache.open(dir, enc);
    expect(cache.id).toBe('fake-encoder-v1');
    expect([cache.width, cache.maxTokens, cache.size]).toEqual([D, L, 0]);
    const progress: Array<[number, number]> = [];
    const first = await cache.prepare(['a cat', 'a dog', 'a cat'], {
      onProgress: (done, total) => progress.push([done, total]),
    });
    expect(first).toEqual({ encoded: 2, cached: 0 });
    expect(enc.calls).toEqual([['a cat', 'a dog']]);
    expect(progress).toEqual([[2, 2]]);

    progress.length = 0;
    const second = await cache.prepare(['a dog', 'gap', 'one two three four five six', 'a cat'], {
      batchSize: 1,
      onProgress: (done, total) => progress.push([done, total]),
    });
    expect(second).toEqual({ encoded: 2, cached: 2 });
    expect(enc.calls.slice(1)).toEqual([['gap'], ['one two three four five six']]);
    expect(progress).toEqual([
      [1, 2],
      [2, 2],
    ]);
    expect(await cache.prepare(['gap'])).toEqual({ encoded: 0, cached: 1 });
    expect(enc.calls).toHaveLength(3);
    expect(cache.size).toBe(4);
    expect(cache.has('a cat')).toBe(true);
    expect(cache.has('a bird')).toBe(false);
  });

  it('serves the stored features through the synchronous TextEncoder interface', () => {
    const cache = TextFeatureCache.open(dir, new FakeEncoder());
    const captions = ['gap', 'a cat', 'one two three four five six', 'a cat'];
    const got = read(cache, captions);
    expect(got).toEqual(want(captions));
    // Padding is zero, and the hole in "gap" too.
    expect(got.mask.slice(0, L)).toEqual([1, 0, 1, 0, 0]);
    expect(got.tokens.slice(D, 2 * D)).toEqual([0, 0, 0, 0]);
  });

  it('survives reopening from disk with identical values, without running the encoder', () => {
    const enc = new FakeEncoder();
    const reopened = TextFeatureCache.open(dir, enc);
    expect(reopened.size).toBe(4);
    expect(reopened.droppedBytes).toBe(0);
    const captions = ['a dog', 'gap', 'a cat', 'one two three four five six'];
    expect(read(reopened, captions)).toEqual(want(captions));
    expect(enc.calls).toEqual([]);
  });

  it('drops a torn last record on reopen, keeping the earlier ones', async () => {
    const torn = join(root, 'torn');
    const enc = new FakeEncoder();
    const cache = TextFeatureCache.open(torn, enc);
    await cache.prepare(['first caption', 'second caption', 'gap'], { batchSize: 1 });
    const size = statSync(cache.path).size;
    truncateSync(cache.path, size - 3); // a crash in the middle of writing "gap"

    const reopened = TextFeatureCache.open(torn, enc);
    expect(reopened.size).toBe(2);
    expect(reopened.has('gap')).toBe(false);
    expect(reopened.droppedBytes).toBeGreaterThan(0);
    expect(statSync(reopened.path).size).toBe(size - 3 - reopened.droppedBytes);
    expect(read(reopened, ['second caption', 'first caption'])).toEqual(want(['second caption', 'first caption']));
    // Preparing again re-encodes only the lost caption, and the file is whole again.
    expect(await reopened.prepare(['first caption', 'gap'])).toEqual({ encoded: 1, cached: 1 });
    expect(enc.calls.at(-1)).toEqual(['gap']);
    expect(statSync(reopened.path).size).toBe(size);
    const again = TextFeatureCache.open(torn, enc);
    expect([again.size, again.droppedBytes]).toEqual([3, 0]);
    expect(read(again, ['gap'])).toEqual(want(['gap']));
  });

  it('drops a record whose bytes were corrupted, and everything after it', async () => {
    const corrupt = join(root, 'corrupt');
    const cache = TextFeatureCache.open(corrupt, new FakeEncoder());
    await cache.prepare(['one'], {});
    const sizeAfterOne = statSync(cache.path).size;
    await cache.prepare(['two', 'three'], {});
    const bytes = readFileSync(cache.path);
    bytes[sizeAfterOne + 20] ^= 0xff; // inside the payload of "two"
    writeFileSync(cache.path, bytes);
    const reopened = TextFeatureCache.open(corrupt, new FakeEncoder());
    expect([reopened.has('one'), reopened.has('two'), reopened.has('three')]).toEqual([true, false, false]);
    expect(statSync(reopened.path).size).toBe(sizeAfterOne);
  });

  it('names a caption that was not prepared', () => {
    const cache = TextFeatureCache.open(dir, new FakeEncoder());
    expect(() => cache.encode(['a cat', 'a purple bird', 'another'])).toThrow(
      /caption "a purple bird" \(and 1 more\) was not prepared; run `await cache\.prepare\(captions\)` first/,
    );
  });

  it('leaves no tensors behind once the returned ones are disposed', () => {
    const cache = TextFeatureCache.open(dir, new FakeEncoder());
    const before = tf.memory().numTensors;
    const { tokens, mask } = cache.encode(['a cat', 'gap']);
    expect(tokens.shape).toEqual([2, L, D]);
    expect(mask.shape).toEqual([2, L]);
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([tokens, mask]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('keeps one file per encoder id and refuses a file that does not match', async () => {
    const other = TextFeatureCache.open(dir, new FakeEncoder('fake-encoder-v2'));
    expect(other.path).not.toBe(TextFeatureCache.open(dir, new FakeEncoder()).path);
    expect(other.size).toBe(0);
    // Same id, another width: the file's header says otherwise.
    expect(() => TextFeatureCache.open(dir, new FakeEncoder('fake-encoder-v1', 8))).toThrow(
      /does not hold features of fake-encoder-v1 \(width 8, 5 tokens\); delete it/,
    );
    // An encoder that returns the wrong amount of data is caught before anything is written.
    const bad: AsyncTextEncoder = {
      id: 'bad',
      width: D,
      maxTokens: L,
      encodeAsync: async () => ({ features: new Float32Array(3), mask: new Uint8Array(L) }),
    };
    const badCache = TextFeatureCache.open(dir, bad);
    await expect(badCache.prepare(['x'])).rejects.toThrow(
      /returned 3 features and 5 mask values for 1 captions; expected 1×5×4 and 1×5/,
    );
    expect(badCache.size).toBe(0);
  });

  it('refuses to append when another writer grew the file', async () => {
    const shared = join(root, 'shared');
    const a = TextFeatureCache.open(shared, new FakeEncoder());
    const b = TextFeatureCache.open(shared, new FakeEncoder());
    await a.prepare(['from a']);
    await expect(b.prepare(['from b'])).rejects.toThrow(/changed on disk since it was opened/);
  });

  it('reports a file that is not this cache, or a cache dir that is a file, as a DataError', async () => {
    const open8 = () => TextFeatureCache.open(dir, new FakeEncoder('fake-encoder-v1', 8));
    expect(open8).toThrow(DataError);
    expect(open8).toThrow(expect.objectContaining({ code: 'DATA_INVALID' }));
    expect(open8).toThrow(/^TextFeatureCache: .* does not hold features of fake-encoder-v1 \(width 8, 5 tokens\)/);
    const file = join(root, 'a-file');
    writeFileSync(file, 'not a directory');
    expect(() => TextFeatureCache.open(file, new FakeEncoder())).toThrow(DataError);
    expect(() => TextFeatureCache.open(file, new FakeEncoder())).toThrow(/cannot use .*a-file as the cache directory/);
    // Asking for a caption that was never prepared is the caller's mistake: a plain Error.
    const cache = TextFeatureCache.open(dir, new FakeEncoder());
    let caught: unknown;
    try {
      cache.encode(['never prepared']);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(Error);
    expect(isUserError(caught)).toBe(false);
  });
});

describe('TextFeatureCache over an ONNX encoder', () => {
  it('stores what the encoder returns', async () => {
    const D3 = 3;
    const V = T5_PIECES.length;
    const E = Float32Array.from({ length: V * D3 }, (_, i) => Math.sin(i));
    const model = onnxModel({
      inputs: [{ name: 'input_ids', type: ONNX_INT64, shape: ['batch', 'sequence'] }],
      outputs: [{ name: 'last_hidden_state', type: ONNX_FLOAT, shape: ['batch', 'sequence', D3] }],
      initializers: [{ name: 'E', dims: [V, D3], data: E }],
      nodes: [{ op: 'Gather', inputs: ['E', 'input_ids'], outputs: ['last_hidden_state'], attributes: { axis: 0 } }],
    });
    const modelDir = join(root, 'tiny-t5');
    mkdirSync(modelDir);
    writeFileSync(join(modelDir, 'tokenizer.json'), JSON.stringify(t5TokenizerJson()));
    writeFileSync(join(modelDir, 'encoder_model.onnx'), model);
    const encoder = await loadOnnxTextEncoder(modelDir, { maxTokens: 8 });
    const cache = TextFeatureCache.open(join(root, 'onnx-cache'), encoder);
    const captions = ['hello world', 'hellos', '', 'ﬁne 😀'];
    await cache.prepare(captions, { batchSize: 3 });
    const direct = await encoder.encodeAsync(captions);
    const { tokens, mask } = cache.encode(captions);
    expect(tokens.shape).toEqual([4, 8, D3]);
    expect(Array.from(tokens.dataSync())).toEqual(Array.from(direct.features));
    expect(Array.from(mask.dataSync())).toEqual(Array.from(direct.mask));
    tf.dispose([tokens, mask]);
    await encoder.dispose?.();
  });
});

describe('TextFeatureCache parts (encoding split over workers)', () => {
  // Sorted and distinct, as `--shard` splits them: 10 captions, shards of 3, 3 and 4.
  const list = ['', 'a bee', 'a cat', 'a dog', 'an owl', 'gap', 'one two', 'red fox', 'three', 'zebra crossing'];
  const digest = captionListDigest(list);
  const partOf = (index: number, count = 3): TextFeaturePart => ({
    index,
    count,
    list: { captions: list.length, digest },
  });
  const rangeOf = (index: number, count = 3) =>
    list.slice(Math.floor((index * list.length) / count), Math.floor(((index + 1) * list.length) / count));

  /** Worker i of 3: encodes its range into its part and marks it finished. */
  async function worker(dir: string, index: number, enc = new FakeEncoder()) {
    const part = TextFeatureCache.open(dir, enc, { part: partOf(index) });
    const result = await part.prepare(rangeOf(index), { batchSize: 2 });
    part.finishPart();
    return { part, result, enc };
  }

  it('3 parts merged give the bytes one process writes; a shard run twice encodes nothing', async () => {
    const dir = join(root, 'parts');
    for (const i of [1, 2, 0]) await worker(dir, i);
    const { result, enc } = await worker(dir, 1);
    expect(result).toEqual({ encoded: 0, cached: 3 });
    expect(enc.calls).toEqual([]);
    expect(readdirSync(dir).filter((f) => f.includes('.part-')).length).toBe(6);

    const cache = TextFeatureCache.open(dir, new FakeEncoder());
    const report = await cache.mergeParts(list);
    expect(report).toEqual({
      merged: ['0/3', '1/3', '2/3'],
      copied: 10,
      skipped: 0,
      encoded: 0,
      missing: [],
      foreign: [],
      incomplete: [],
      otherList: [],
    });
    expect(readdirSync(dir).filter((f) => f.includes('.part-'))).toEqual([]);
    const single = TextFeatureCache.open(join(root, 'single'), new FakeEncoder());
    await single.prepare(list);
    expect(readFileSync(cache.path).equals(readFileSync(single.path))).toBe(true);
    expect(read(cache, list)).toEqual(want(list));
    // Merging again finds nothing; a cache reopened holds everything.
    expect((await cache.mergeParts(list)).merged).toEqual([]);
    expect(TextFeatureCache.open(dir, new FakeEncoder()).size).toBe(10);
  });

  it('reports a missing part and an unfinished one, merging neither', async () => {
    const dir = join(root, 'parts-missing');
    await worker(dir, 0);
    const unfinished = TextFeatureCache.open(dir, new FakeEncoder(), { part: partOf(2) });
    await unfinished.prepare(rangeOf(2).slice(0, 2));
    const cache = TextFeatureCache.open(dir, new FakeEncoder());
    const report = await cache.mergeParts(list);
    expect(report).toMatchObject({ merged: ['0/3'], copied: 3, missing: ['1/3'], foreign: [] });
    expect(report.incomplete).toEqual([expect.stringMatching(/^2\/3: not finished/)]);
    expect(existsSync(unfinished.path)).toBe(true);
    expect(cache.size).toBe(3);
  });

  it("with encodeGaps, encodes a missing part's captions in its place: still the bytes of one process", async () => {
    const dir = join(root, 'parts-gap');
    await worker(dir, 0);
    await worker(dir, 2);
    const enc = new FakeEncoder();
    const cache = TextFeatureCache.open(dir, enc);
    const report = await cache.mergeParts(list, { encodeGaps: true });
    expect(report).toMatchObject({ merged: ['0/3', '2/3'], copied: 7, encoded: 3, missing: ['1/3'] });
    expect(enc.calls).toEqual([rangeOf(1)]);
    const single = TextFeatureCache.open(join(root, 'single'), new FakeEncoder());
    expect(readFileSync(cache.path).equals(readFileSync(single.path))).toBe(true);
  });

  it('reports a part of another encoder width as foreign, and refuses to reuse a part for another list', async () => {
    const dir = join(root, 'parts-foreign');
    const wide = TextFeatureCache.open(dir, new FakeEncoder('fake-encoder-v1', 6), { part: partOf(0) });
    await wide.prepare(rangeOf(0));
    wide.finishPart();
    const cache = TextFeatureCache.open(dir, new FakeEncoder());
    const report = await cache.mergeParts(list);
    expect(report.merged).toEqual([]);
    expect(report.foreign).toEqual([expect.stringMatching(/^0\/3: .*holds features of fake-encoder-v1 \(width 6/)]);
    expect(cache.size).toBe(0);

    const other = { ...partOf(0, 3), list: { captions: 4, digest: captionListDigest(['a', 'b', 'c', 'd']) } };
    await worker(join(root, 'parts-relist'), 0);
    const error = (() => {
      try {
        TextFeatureCache.open(join(root, 'parts-relist'), new FakeEncoder(), { part: other });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(DataError);
    expect(String((error as Error).message)).toMatch(/part 0\/3 of another caption list/);
  });
});
