import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile, toFloat32, writeSafetensors } from '@matryoshka-ts/checkpoint';
import { loadEmojiDataset } from '@matryoshka-ts/data';
import { type ClipModel, type FeatureExtractor, type NetworkInput, networkInputBatch } from '@matryoshka-ts/metrics';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders';
import {
  PROXY_SHAPE,
  type ProxyClipShape,
  type ProxyParams,
  proxyFeatureDim,
  proxyImageEmbed,
  proxyImageFeatures,
  proxySpecs,
  proxyTextEmbed,
} from './proxy-clip.js';
import { PROXY_TRAINING, type ProxyTrainOptions, trainProxyClip } from './train-proxy.js';

/** Bump when the architecture or training changes: cached weights of another version are not reused. */
const PROXY_VERSION = 2;

export interface ProxyOptions {
  /** Where trained weights are cached (default $XDG_CACHE_HOME or ~/.cache, /matryoshka-ts/proxy). */
  cacheDir?: string;
  shape?: ProxyClipShape;
  training?: Partial<ProxyTrainOptions>;
  /** Emoji categories to train on (default all ten). */
  categories?: string[];
  /** Progress lines (training takes about a minute once, then the cache is used). */
  log?: (line: string) => void;
}

export interface ProxyClip {
  features: FeatureExtractor;
  clip: ClipModel;
  /** The weights file (cached). */
  path: string;
  dispose(): void;
}

export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'matryoshka-ts', 'proxy');
}

/**
 * The proxy CLIP trained on all bundled emoji (no skin tones) at 64 px: loaded from the cache, or
 * trained once (about a minute on the native backend) and cached atomically. The active tfjs
 * backend runs it; start one first (`initBackend`).
 */
export async function loadProxyClip(options: ProxyOptions = {}): Promise<ProxyClip> {
  const shape = options.shape ?? PROXY_SHAPE;
  const training = { ...PROXY_TRAINING, ...options.training };
  const dataset = loadEmojiDataset({ resolution: shape.size, skinTones: false, categories: options.categories });
  const recipe = JSON.stringify({ version: PROXY_VERSION, shape, training, data: dataset.id });
  const key = createHash('sha256').update(recipe).digest('hex').slice(0, 16);
  const dir = options.cacheDir ?? defaultCacheDir();
  const path = join(dir, `proxy-clip-${key}.safetensors`);
  const encoder = new HashedWordEncoder({ width: shape.textWidth, maxTokens: shape.maxTokens });
  let weights: Map<string, Float32Array>;
  if (existsSync(path)) {
    const file = SafetensorsFile.open(path);
    try {
      weights = new Map(proxySpecs(shape).map(([name]) => [name, toFloat32(file.read(name).data)]));
    } finally {
      file.close();
    }
  } else {
    const log = options.log ?? (() => {});
    log(
      `proxy: training the proxy CLIP on ${dataset.id} (${dataset.size} images, ${training.steps} steps); ` +
        `cached at ${path}`,
    );
    const started = performance.now();
    const result = trainProxyClip(dataset, encoder, shape, training, (step, loss) => {
      if (step % 50 === 0 || step === training.steps)
        log(`proxy: step ${step}/${training.steps} | loss ${loss.toFixed(3)} (contrastive + degradation)`);
    });
    weights = result.weights;
    mkdirSync(dir, { recursive: true });
    writeSafetensors(
      path,
      new Map(
        proxySpecs(shape).map(([name, s]) => [name, { dtype: 'F32' as const, shape: s, data: weights.get(name)! }]),
      ),
      { format: 'matryoshka-ts/proxy-clip/1', recipe },
    );
    log(
      `proxy: trained in ${((performance.now() - started) / 1000).toFixed(0)} s, ` +
        `final loss ${result.losses.at(-1)!.toFixed(3)}`,
    );
  }
  // The id names the exact weights: a proxy trained on another backend differs in the last bits.
  const tag = createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 12);
  const P: ProxyParams = new Map(proxySpecs(shape).map(([name, s]) => [name, tf.tensor(weights.get(name)!, s)]));
  const input: NetworkInput = { size: shape.size, resize: 'pytorch-fid', range: '-1-1', layout: 'nhwc' };
  const batchTensor = (images: Parameters<FeatureExtractor['features']>[0]) =>
    tf.tensor4d(networkInputBatch(images, input), [images.length, shape.size, shape.size, 3]);
  const features: FeatureExtractor = {
    id: `proxy-clip-emoji#${tag}`,
    dim: proxyFeatureDim(shape),
    resize: `pytorch-fid bilinear to ${shape.size} (proxy)`,
    proxy: true,
    async features(images) {
      const x = batchTensor(images);
      const f = proxyImageFeatures(P, x, shape);
      const data = (await f.data()) as Float32Array;
      tf.dispose([x, f]);
      return data;
    },
    dispose: () => {},
  };
  const clip: ClipModel = {
    id: `proxy-clip-emoji#${tag}`,
    proxy: true,
    async imageEmbeddings(images) {
      const data = tf.tidy(() => proxyImageEmbed(P, proxyImageFeatures(P, batchTensor(images), shape), shape));
      const out = (await data.data()) as Float32Array;
      data.dispose();
      return out;
    },
    async textEmbeddings(captions) {
      const t = proxyTextEmbed(P, encoder, captions);
      const out = (await t.data()) as Float32Array;
      t.dispose();
      return out;
    },
    dispose: () => {},
  };
  return { features, clip, path, dispose: () => tf.dispose([...P.values()]) };
}
