import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ClipModel,
  type FeatureExtractor,
  type OnnxDevice,
  type ResizeMethod,
  loadOnnxClip,
  loadOnnxFeatureExtractor,
  loadTfjsGraphFeatureExtractor,
} from '@matryoshka-ts/metrics';
import { type ProxyClip, type ProxyOptions, loadProxyClip } from './proxy/proxy-model.js';
import { ConfigError } from '@matryoshka-ts/core';

/** What `--features` / `--clip` may name, and how the network's input is prepared. */
export interface NetworkOptions {
  /** `proxy` (default), an ONNX file, or a TF.js graph model (directory with model.json, or the file). */
  features?: string;
  /** `proxy`, `none`, or a CLIP directory (ONNX towers + tokenizer files). */
  clip?: string;
  resize?: ResizeMethod;
  size?: number;
  range?: '0-1' | '0-255' | '-1-1';
  cacheDir?: string;
  /** Where ONNX Runtime runs the ONNX networks (default cpu); the proxy and TF.js models run on the tfjs backend. */
  device?: OnnxDevice;
  /** The proxy's architecture and training (defaults: PROXY_SHAPE, PROXY_TRAINING); tests use a small one. */
  proxy?: Pick<ProxyOptions, 'shape' | 'training' | 'categories'>;
  log?: (line: string) => void;
}

export const PROXY_NOTE =
  'PROXY network trained on the bundled emoji data: numbers rank models of this data set only ' +
  'and are not comparable with published FID or CLIP scores';

const proxies = new Map<string, Promise<ProxyClip>>();

/** The proxy CLIP, trained (or read from the cache) once per process and recipe. */
export function proxyClip(options: NetworkOptions): Promise<ProxyClip> {
  const key = JSON.stringify([options.cacheDir, options.proxy]);
  if (!proxies.has(key))
    proxies.set(key, loadProxyClip({ cacheDir: options.cacheDir, log: options.log, ...options.proxy }));
  return proxies.get(key)!;
}

/** Opens the feature network `--features` names. */
export async function openFeatures(options: NetworkOptions): Promise<FeatureExtractor> {
  const spec = options.features ?? 'proxy';
  if (spec === 'proxy') return (await proxyClip(options)).features;
  if (!existsSync(spec))
    throw new ConfigError(
      `--features ${spec}: no such file or directory (give an ONNX file, a TF.js graph model directory, or 'proxy')`,
    );
  const input = { resize: options.resize, size: options.size, range: options.range };
  if (spec.endsWith('.onnx')) return loadOnnxFeatureExtractor(spec, { ...input, device: options.device });
  if (spec.endsWith('model.json') || (statSync(spec).isDirectory() && existsSync(join(spec, 'model.json'))))
    return loadTfjsGraphFeatureExtractor(spec, input);
  throw new ConfigError(`--features ${spec}: not an .onnx file or a TF.js graph model (model.json)`);
}

/** Opens the CLIP model `--clip` names, or undefined for `none`. */
export async function openClip(options: NetworkOptions): Promise<ClipModel | undefined> {
  const spec = options.clip ?? 'proxy';
  if (spec === 'none') return undefined;
  if (spec === 'proxy') return (await proxyClip(options)).clip;
  return loadOnnxClip(spec, { device: options.device });
}
