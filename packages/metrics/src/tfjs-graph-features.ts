import { existsSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { BackendError, DataError } from '@matryoshka-ts/core';
import type * as TfConverter from '@tensorflow/tfjs-converter';
import type * as Tf from '@tensorflow/tfjs-core';
import type { FeatureExtractor, NetworkInput } from './feature-extractor.js';
import { networkInputBatch } from './feature-extractor.js';
import type { Uint8Image } from './resize.js';

export interface TfjsGraphFeatureOptions extends Partial<NetworkInput> {
  /** Output node to read (default: the model's first output). */
  outputName?: string;
}

interface ModelJson {
  modelTopology: unknown;
  weightsManifest: Array<{ paths: string[]; weights: Tf.io.WeightsManifestEntry[] }>;
  format?: string;
  generatedBy?: string;
  convertedBy?: string;
  signature?: unknown;
  userDefinedMetadata?: Record<string, unknown>;
}

async function tfjs(): Promise<{ tf: typeof Tf; converter: typeof TfConverter }> {
  try {
    return { tf: await import('@tensorflow/tfjs-core'), converter: await import('@tensorflow/tfjs-converter') };
  } catch (error) {
    throw new BackendError(
      `a TF.js graph model needs @tensorflow/tfjs-core and @tensorflow/tfjs-converter ` +
        `(${(error as Error).message.split('\n')[0]}). Install them next to your app: ` +
        '`npm i @tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-converter@4.22.0` (or pnpm add / yarn add).',
      { cause: error },
    );
  }
}

/**
 * A feature network saved as a TF.js graph model (model.json + weight shards, as
 * `tensorflowjs_converter` writes it), read from a LOCAL directory, run on the active tfjs backend.
 * TF networks are NHWC and usually take [−1, 1]; set `range` and `resize` to the network's.
 */
export async function loadTfjsGraphFeatureExtractor(
  path: string,
  options: TfjsGraphFeatureOptions = {},
): Promise<FeatureExtractor> {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'model.json') : path;
  if (!existsSync(file)) throw new DataError(`no TF.js graph model at ${path} (expected model.json)`);
  const json = JSON.parse(readFileSync(file, 'utf8')) as ModelJson;
  if (!json.modelTopology || !Array.isArray(json.weightsManifest))
    throw new DataError(`${file} is not a TF.js graph model (modelTopology / weightsManifest missing)`);
  const hash = createHash('sha256').update(readFileSync(file));
  const shards: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    for (const p of group.paths) {
      const shard = join(dirname(file), p);
      if (!existsSync(shard)) throw new DataError(`${file} lists weight shard ${p}, which is missing`);
      const bytes = new Uint8Array(readFileSync(shard));
      hash.update(bytes);
      shards.push(bytes);
    }
  }
  const weightData = new Uint8Array(shards.reduce((n, s) => n + s.length, 0));
  let offset = 0;
  for (const s of shards) {
    weightData.set(s, offset);
    offset += s.length;
  }
  const { tf, converter } = await tfjs();
  const model = await converter.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology as Tf.io.ModelArtifacts['modelTopology'],
      weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
      weightData: weightData.buffer,
      format: json.format,
      generatedBy: json.generatedBy,
      convertedBy: json.convertedBy,
      signature: json.signature as object | undefined,
      userDefinedMetadata: json.userDefinedMetadata as Record<string, object> | undefined,
    }),
  );
  const input: NetworkInput = {
    size: options.size ?? 299,
    resize: options.resize ?? 'pytorch-fid',
    range: options.range ?? '-1-1',
    layout: options.layout ?? 'nhwc',
  };
  const outputName = options.outputName ?? model.outputNodes[0];
  const run = async (images: Uint8Image[]): Promise<Float32Array> => {
    const s = input.size;
    const shape: [number, number, number, number] =
      input.layout === 'nchw' ? [images.length, 3, s, s] : [images.length, s, s, 3];
    const x = tf.tensor4d(networkInputBatch(images, input), shape);
    // execute() is synchronous and quiet; graphs with control flow need executeAsync().
    let y: Tf.Tensor;
    try {
      y = model.execute(x, outputName) as Tf.Tensor;
    } catch (error) {
      if (!/executeAsync/.test((error as Error).message)) throw error;
      y = (await model.executeAsync(x, outputName)) as Tf.Tensor;
    }
    const data = (await y.data()) as Float32Array;
    tf.dispose([x, y]);
    return data;
  };
  const dim = (await run([{ data: new Uint8Array(8 * 8 * 3), width: 8, height: 8, channels: 3 }])).length;
  return {
    id:
      `tfjs-graph:${basename(dirname(file))}#${hash.digest('hex').slice(0, 12)}` +
      `|${input.resize}@${input.size}|${input.range}`,
    dim,
    resize: `${input.resize} to ${input.size}`,
    proxy: false,
    async features(images) {
      if (!images.length) return new Float32Array(0);
      return run(images);
    },
    dispose: () => model.dispose(),
  };
}
