import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '@matryoshka-ts/core';
import { ClipTokenizer } from '@matryoshka-ts/text-encoders';
import { type OnnxDevice, type OrtTensor, onnxRuntime, onnxSession, readOnnxFile } from './onnx-runtime.js';
import { type Uint8Image, clipPreprocess } from './resize.js';

/**
 * The two CLIP scores in use, both over the cosine similarity of image and caption embeddings:
 * - `torchmetrics`: 100 · max(cos, 0) (torchmetrics' CLIPScore, the number text-to-image papers
 *   report, e.g. ~26–32 for COCO captions);
 * - `clipscore`: 2.5 · max(cos, 0) (Hessel et al. 2021, "CLIPScore", w = 2.5).
 */
export type ClipScoreDefinition = 'torchmetrics' | 'clipscore';

const WEIGHT: Record<ClipScoreDefinition, number> = { torchmetrics: 100, clipscore: 2.5 };

export function clipScoreOfCosine(cosine: number, definition: ClipScoreDefinition): number {
  return WEIGHT[definition] * Math.max(cosine, 0);
}

/** Image and text towers of a CLIP-style model: both map into one embedding space. */
export interface ClipModel {
  /** Names the weights, tokenizer and preprocessing. */
  readonly id: string;
  /** True for the stand-in trained on the bundled data (not comparable with published CLIP scores). */
  readonly proxy: boolean;
  imageEmbeddings(images: Uint8Image[]): Promise<Float32Array>;
  textEmbeddings(captions: string[]): Promise<Float32Array>;
  dispose(): Promise<void> | void;
}

export interface ClipScoreResult {
  definition: ClipScoreDefinition;
  /** Mean over pairs of the definition's score. */
  score: number;
  /** Mean cosine similarity (before clamping and scaling). */
  cosine: number;
  n: number;
  perPair: Float64Array;
}

function cosines(a: Float32Array, b: Float32Array, n: number): Float64Array {
  const d = a.length / n;
  if (b.length !== a.length) throw new Error(`CLIP: image embeddings have width ${d}, text embeddings ${b.length / n}`);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let k = i * d; k < (i + 1) * d; k++) {
      ab += a[k] * b[k];
      aa += a[k] * a[k];
      bb += b[k] * b[k];
    }
    out[i] = ab / Math.sqrt(Math.max(aa * bb, 1e-30));
  }
  return out;
}

/** CLIP score of image–caption pairs (images[i] with captions[i]), in batches. */
export async function clipScore(
  model: ClipModel,
  images: Uint8Image[],
  captions: string[],
  options: { definition?: ClipScoreDefinition; batchSize?: number; onBatch?: (done: number) => void } = {},
): Promise<ClipScoreResult> {
  if (images.length !== captions.length)
    throw new Error(`CLIP score: ${images.length} images but ${captions.length} captions`);
  if (!images.length) throw new Error('CLIP score: no images');
  const definition = options.definition ?? 'torchmetrics';
  const batch = options.batchSize ?? 32;
  const perPair = new Float64Array(images.length);
  for (let i = 0; i < images.length; i += batch) {
    const n = Math.min(batch, images.length - i);
    const cos = cosines(
      await model.imageEmbeddings(images.slice(i, i + n)),
      await model.textEmbeddings(captions.slice(i, i + n)),
      n,
    );
    perPair.set(cos, i);
    options.onBatch?.(i + n);
  }
  const cosine = perPair.reduce((s, c) => s + c, 0) / perPair.length;
  const score = perPair.reduce((s, c) => s + clipScoreOfCosine(c, definition), 0) / perPair.length;
  return { definition, score, cosine, n: perPair.length, perPair };
}

function findFile(dir: string, names: string[]): string | undefined {
  for (const sub of ['', 'onnx'])
    for (const name of names) if (existsSync(join(dir, sub, name))) return join(dir, sub, name);
  return undefined;
}

/**
 * A CLIP model from a LOCAL directory: the two towers as ONNX files (`vision_model.onnx` →
 * `image_embeds`, `text_model.onnx` → `text_embeds`, directly or under onnx/, as transformers.js
 * lays them out) and the tokenizer files (vocab.json + merges.txt, or tokenizer.json). Images are
 * preprocessed as CLIPImageProcessor does (PIL bicubic shorter side to 224, centre crop, CLIP's
 * mean/std).
 */
export async function loadOnnxClip(
  dir: string,
  options: { imageSize?: number; device?: OnnxDevice } = {},
): Promise<ClipModel> {
  if (!existsSync(dir)) throw new DataError(`no CLIP model directory at ${dir}`);
  const visionPath = findFile(dir, ['vision_model.onnx', 'image_model.onnx', 'visual.onnx']);
  const textPath = findFile(dir, ['text_model.onnx', 'textual.onnx']);
  if (!visionPath || !textPath)
    throw new DataError(
      `${dir} needs vision_model.onnx and text_model.onnx (directly or under onnx/); missing: ` +
        `${[!visionPath && 'vision_model.onnx', !textPath && 'text_model.onnx'].filter(Boolean).join(', ')}`,
    );
  const tokenizer = ClipTokenizer.fromDirectory(dir);
  const ort = await onnxRuntime();
  const vision = readOnnxFile(visionPath);
  const text = readOnnxFile(textPath);
  const visionSession = await onnxSession(vision.bytes, options.device);
  const textSession = await onnxSession(text.bytes, options.device);
  const size = options.imageSize ?? 224;
  const pick = (names: readonly string[], wanted: string, file: string) => {
    if (names.includes(wanted)) return wanted;
    if (names.length === 1) return names[0];
    throw new DataError(`${file} has no '${wanted}' (it has ${names.join(', ')})`);
  };
  const imageOut = pick(visionSession.outputNames, 'image_embeds', visionPath);
  const textOut = pick(textSession.outputNames, 'text_embeds', textPath);
  const pixelIn = pick(visionSession.inputNames, 'pixel_values', visionPath);
  return {
    id: `clip-onnx:${vision.tag}+${text.tag}+${tokenizer.id}@${size}`,
    proxy: false,
    async imageEmbeddings(images) {
      const plane = 3 * size * size;
      const x = new Float32Array(images.length * plane);
      images.forEach((image, i) => x.set(clipPreprocess(image, size).data, i * plane));
      const input = new ort.Tensor('float32', x, [images.length, 3, size, size]);
      const y = (await visionSession.run({ [pixelIn]: input }, [imageOut]))[imageOut];
      const data = y.data as Float32Array;
      input.dispose();
      y.dispose();
      return data;
    },
    async textEmbeddings(captions) {
      const batch = tokenizer.encodeBatch(captions);
      const L = batch.ids.length / captions.length;
      const feeds: Record<string, OrtTensor> = {
        input_ids: new ort.Tensor(
          'int64',
          BigInt64Array.from(batch.ids, (v) => BigInt(v)),
          [captions.length, L],
        ),
      };
      if (textSession.inputNames.includes('attention_mask'))
        feeds.attention_mask = new ort.Tensor(
          'int64',
          BigInt64Array.from(batch.attentionMask, (v) => BigInt(v)),
          [captions.length, L],
        );
      const y = (await textSession.run(feeds, [textOut]))[textOut];
      const data = y.data as Float32Array;
      for (const t of Object.values(feeds)) t.dispose();
      y.dispose();
      return data;
    },
    async dispose() {
      await visionSession.release();
      await textSession.release();
    },
  };
}
