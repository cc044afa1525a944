import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@matryoshka-ts/core';
import type { NestedUNetConfig } from '@matryoshka-ts/nested-unet';
import { HashedWordEncoder, TextFeatureCache, loadOnnxTextEncoder } from '@matryoshka-ts/text-encoders';
import type { TrainConfig } from './config.js';
import type { Conditioner } from './conditioning.js';

export function defaultTextCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'matryoshka-ts', 'text-features');
}

/**
 * The conditioner a config names. A frozen ONNX encoder (the paper's FLAN-T5) is asynchronous and
 * slow, so it feeds the model through a disk cache: `prepare(captions)` encodes the captions not
 * yet cached, and the training loop and the sampler then read features synchronously. The bundled
 * hashed-word encoder needs no preparation.
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
  const encoder = await loadOnnxTextEncoder(spec.path, { maxTokens: spec.maxTokens, device: spec.device });
  if (encoder.width !== spec.width)
    throw new ConfigError(
      `config: conditioning.encoder.width is ${spec.width}, but ${spec.path} gives ${encoder.width}-wide features`,
    );
  const cache = TextFeatureCache.open(spec.cache ?? defaultTextCacheDir(), encoder);
  log(`text encoder: ${encoder.id}, ${cache.size} captions cached in ${cache.path}`);
  return {
    kind: 'text',
    encoder: cache,
    async prepare(captions) {
      const started = performance.now();
      const result = await cache.prepare(captions, {
        onProgress: (done, total) => log(`text encoder: ${done}/${total} captions`),
      });
      if (result.encoded)
        log(
          `text encoder: encoded ${result.encoded} captions in ` +
            `${((performance.now() - started) / 1000).toFixed(1)} s (${result.cached} were cached)`,
        );
    },
  };
}
