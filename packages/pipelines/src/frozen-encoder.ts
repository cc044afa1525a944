import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@matryoshka-ts/core';
import type { NestedUNetConfig } from '@matryoshka-ts/nested-unet';
import {
  type AsyncTextEncoder,
  HashedWordEncoder,
  TextFeatureCache,
  captionListDigest,
  loadOnnxTextEncoder,
} from '@matryoshka-ts/text-encoders';
import type { TrainConfig } from './config.js';
import type { Conditioner } from './conditioning.js';
import { type CacheFillSummary, mergeProblems } from './cache-summary.js';
import { type Shard, shardLabel, shardRange } from './shard.js';

export function defaultTextCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'matryoshka-ts', 'text-features');
}

type OnnxEncoderSpec = Extract<TrainConfig['conditioning']['encoder'], { kind: 'onnx' }>;

/** The frozen ONNX encoder a config names (undefined for any other conditioning), and its cache directory. */
export function frozenEncoderOf(config: TrainConfig): { spec: OnnxEncoderSpec; cacheDir: string } | undefined {
  const c = config.conditioning;
  if (c.kind !== 'text' || c.encoder.kind !== 'onnx') return undefined;
  return { spec: c.encoder, cacheDir: c.encoder.cache ?? defaultTextCacheDir() };
}

async function loadFrozenEncoder(spec: OnnxEncoderSpec): Promise<AsyncTextEncoder> {
  const encoder = await loadOnnxTextEncoder(spec.path, { maxTokens: spec.maxTokens, device: spec.device });
  if (encoder.width !== spec.width) {
    await encoder.dispose?.();
    throw new ConfigError(
      `config: conditioning.encoder.width is ${spec.width}, but ${spec.path} gives ${encoder.width}-wide features`,
    );
  }
  return encoder;
}

/** The list a split is made of: distinct captions, sorted (JavaScript's default order, by UTF-16 code units). */
export const sortedCaptions = (captions: Iterable<string>) => [...new Set(captions)].sort();

/**
 * Folds the parts of a sharded `mdm-train cache` into the cache, in shard order, encoding in its
 * place the range of a part that could not be merged (so the file ends as one process writes
 * it); logs what was merged and what was not.
 */
async function mergeTextParts(
  cache: TextFeatureCache,
  list: string[],
  log: (line: string) => void,
  onProgress?: (done: number, total: number) => void,
) {
  const report = await cache.mergeParts(list, { encodeGaps: true, onProgress });
  if (report.merged.length)
    log(`text encoder: merged parts ${report.merged.join(', ')} (${report.copied} captions) into ${cache.path}`);
  if (report.otherList.length)
    log(
      `text encoder: parts ${report.otherList.join(', ')} were made for another caption list ` +
        '(merged: features are stored per caption)',
    );
  for (const line of mergeProblems('text encoder', report, 'its captions are encoded here')) log(line);
  return report;
}

/**
 * The conditioner a config names. A frozen ONNX encoder (the paper's FLAN-T5) is asynchronous and
 * slow, so it feeds the model through a disk cache: `prepare(captions)` folds in the parts of a
 * sharded `mdm-train cache`, then encodes the captions not yet cached, and the training loop and
 * the sampler then read features synchronously. The bundled hashed-word encoder needs no preparation.
 */
export async function openConditioner(
  config: TrainConfig,
  model: NestedUNetConfig,
  log: (line: string) => void = () => {},
): Promise<Conditioner> {
  const c = config.conditioning;
  if (c.kind === 'labels') return { kind: 'labels', numClasses: model.labels!.numClasses };
  if (c.kind === 'none') return { kind: 'none' };
  const spec = c.encoder;
  if (spec.kind === 'hashed-words') return { kind: 'text', encoder: new HashedWordEncoder(spec) };
  const encoder = await loadFrozenEncoder(spec);
  const cache = TextFeatureCache.open(spec.cache ?? defaultTextCacheDir(), encoder);
  log(`text encoder: ${encoder.id}, ${cache.size} captions cached in ${cache.path}`);
  return {
    kind: 'text',
    encoder: cache,
    async prepare(captions) {
      const started = performance.now();
      const list = sortedCaptions(captions);
      const onProgress = (done: number, total: number) => log(`text encoder: ${done}/${total} captions`);
      const merged = await mergeTextParts(cache, list, log, onProgress);
      const result = await cache.prepare(list, { onProgress });
      const encoded = merged.encoded + result.encoded;
      if (encoded)
        log(
          `text encoder: encoded ${encoded} captions in ` +
            `${((performance.now() - started) / 1000).toFixed(1)} s (${result.cached - merged.encoded} were cached)`,
        );
    },
  };
}

/**
 * Fills the frozen encoder's feature cache with `captions` (`mdm-train cache`). Without a shard:
 * merges the parts of a sharded fill, then encodes what is still missing, in sorted order. With
 * `--shard i/n`: encodes shard i's contiguous range of the sorted distinct captions into its own
 * part file (those the cache already holds excepted), and marks the part finished.
 */
export async function fillTextFeatureCache(
  config: TrainConfig,
  captions: Iterable<string>,
  options: { shard?: Shard; log?: (line: string) => void } = {},
): Promise<CacheFillSummary> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const frozen = frozenEncoderOf(config);
  if (!frozen) throw new ConfigError('config: conditioning.encoder is not a frozen ONNX encoder: it has no cache');
  const list = sortedCaptions(captions);
  const encoder = await loadFrozenEncoder(frozen.spec);
  try {
    const onProgress = (done: number, total: number) => log(`text encoder: ${done}/${total} captions`);
    if (!options.shard) {
      const cache = TextFeatureCache.open(frozen.cacheDir, encoder);
      const report = await mergeTextParts(cache, list, log, onProgress);
      const result = await cache.prepare(list, { onProgress });
      return {
        cache: 'text-features',
        path: cache.path,
        total: list.length,
        encoded: report.encoded + result.encoded,
        present: result.cached - report.encoded,
        merged: report.merged,
        missing: report.missing,
        foreign: report.foreign,
        incomplete: [...report.incomplete, ...report.otherList.map((p) => `${p}: made for another caption list`)],
        seconds: (performance.now() - started) / 1000,
      };
    }
    const shard = options.shard;
    const { from, to } = shardRange(list.length, shard);
    const range = list.slice(from, to);
    // The cache itself is only read (another process may be merging into it): captions it holds
    // (a merged split, an earlier run) are not encoded again.
    const mainPath = TextFeatureCache.fileOf(frozen.cacheDir, encoder.id);
    const main = existsSync(mainPath) ? TextFeatureCache.open(frozen.cacheDir, encoder, { readOnly: true }) : undefined;
    const todo = main ? range.filter((c) => !main.has(c)) : range;
    const summary = (path: string, encoded: number, present: number): CacheFillSummary => ({
      cache: 'text-features',
      shard: shardLabel(shard),
      path,
      total: range.length,
      encoded,
      present,
      seconds: (performance.now() - started) / 1000,
    });
    if (todo.length === 0) return summary(mainPath, 0, range.length);
    const digest = captionListDigest(list);
    const part = TextFeatureCache.open(frozen.cacheDir, encoder, {
      part: { index: shard.index, count: shard.count, list: { captions: list.length, digest } },
    });
    const result = await part.prepare(todo, { onProgress });
    part.finishPart();
    return summary(part.path, result.encoded, range.length - result.encoded);
  } finally {
    await encoder.dispose?.();
  }
}
