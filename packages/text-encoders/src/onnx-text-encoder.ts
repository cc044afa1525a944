import { ConfigError, DataError } from '@matryoshka-ts/core';
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { onnxModelFingerprint } from './model-fingerprint.js';
import {
  type OnnxDevice,
  type OrtRuntime,
  type OrtSession,
  type OrtTensor,
  type OrtValueMetadata,
  onnxRuntime,
  onnxSessionFromFile,
} from './onnx-runtime.js';
import type { AsyncTextEncoder, EncodedTextArrays } from './text-encoder.js';
import { type BatchTokenizer, tokenizerFromDirectory } from './tokenizer-from-directory.js';

export interface OnnxTextEncoderOptions {
  /**
   * Where the session runs (default `cpu`); `cuda` needs onnxruntime-node's CUDA provider files,
   * `webgpu` a GPU's Vulkan driver on Linux (ONNX Runtime's Dawn is built in).
   */
  device?: OnnxDevice;
  /** Tokens L per caption, eos included (default 128 for T5, the CLIP context length, 77). */
  maxTokens?: number;
  /** The model file, relative to `dir` or absolute (default: searched, see loadOnnxTextEncoder). */
  modelFile?: string;
  /** Input names (defaults `input_ids`, `attention_mask`; the mask is fed only if the model has it). */
  inputIdsName?: string;
  attentionMaskName?: string;
  /** Output [B, L, D] (default `last_hidden_state`; a model with a single output may name it anything). */
  outputName?: string;
}

/** The model files looked for, in order, in `dir` and then in `dir/onnx`. */
export const ONNX_TEXT_MODEL_FILES = ['encoder_model.onnx', 'text_model.onnx', 'model.onnx'];

/** Bumped when the features for the same model and tokenizer change (padding, zeroing). */
const FORMAT = 'v1';

/**
 * A frozen text encoder exported to ONNX in a LOCAL directory (FLAN-T5's encoder from optimum,
 * a CLIP text tower…): the model file (see ONNX_TEXT_MODEL_FILES) with inputs `input_ids`
 * (int64 [B, L]) and optionally `attention_mask`, output `last_hidden_state` [B, L, D]; the
 * tokenizer from the files beside it (see tokenizerFromDirectory). Features at padded positions
 * are zero. Nothing is downloaded.
 */
export async function loadOnnxTextEncoder(
  dir: string,
  options: OnnxTextEncoderOptions = {},
): Promise<AsyncTextEncoder> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new DataError(`no text encoder directory at ${dir}`);
  const modelPath = findModelFile(dir, options.modelFile);
  const { tokenizer, defaultMaxTokens } = tokenizerFromDirectory(dir);
  const ort = await onnxRuntime();
  const session = await onnxSessionFromFile(modelPath, options.device);
  const io = resolveIo(session, modelPath, options);

  const maxTokens = options.maxTokens ?? io.fixedLength ?? defaultMaxTokens;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new ConfigError(`loadOnnxTextEncoder: maxTokens must be a positive integer, got ${maxTokens}`);
  }
  if (io.fixedLength !== undefined && io.fixedLength !== maxTokens) {
    throw new ConfigError(
      `${modelPath} takes ${io.inputIds} of fixed length ${io.fixedLength}; set maxTokens: ${io.fixedLength}`,
    );
  }

  const run = (captions: string[]) => runBatch(ort, session, io, tokenizer, captions, maxTokens);
  // The width is in the output's declared shape, or else learnt from one empty caption.
  const width = io.width ?? (await run([''])).width;
  const id = `onnx-text-${FORMAT}:${onnxModelFingerprint(modelPath)}+${tokenizer.id}@${maxTokens}`;

  return {
    id,
    width,
    maxTokens,
    async encodeAsync(captions) {
      if (captions.length === 0) return { features: new Float32Array(0), mask: new Uint8Array(0) };
      const result = await run(captions);
      if (result.width !== width)
        throw new Error(`${modelPath} returned features of width ${result.width}, expected ${width}`);
      return { features: result.features, mask: result.mask };
    },
    async dispose() {
      await session.release();
    },
  };
}

function findModelFile(dir: string, explicit: string | undefined): string {
  if (explicit !== undefined) {
    const path = isAbsolute(explicit) ? explicit : join(dir, explicit);
    if (!existsSync(path)) throw new DataError(`no ONNX model at ${path}`);
    return path;
  }
  for (const sub of ['', 'onnx'])
    for (const name of ONNX_TEXT_MODEL_FILES) if (existsSync(join(dir, sub, name))) return join(dir, sub, name);
  const names = ONNX_TEXT_MODEL_FILES.join(', ');
  throw new DataError(`${dir} has no ONNX text encoder: looked for ${names} in it and in onnx/ (or pass modelFile)`);
}

interface ModelIo {
  inputIds: string;
  /** The attention-mask input, when the model has one. */
  attentionMask: string | undefined;
  output: string;
  /** int64 (the export default) or int32 ids and mask. */
  intType: 'int64' | 'int32';
  /** L when the export fixed it, else undefined (then batches are cut to their longest row). */
  fixedLength: number | undefined;
  /** D when the output shape declares it. */
  width: number | undefined;
}

function resolveIo(session: OrtSession, path: string, options: OnnxTextEncoderOptions): ModelIo {
  const inputIds = options.inputIdsName ?? 'input_ids';
  const maskName = options.attentionMaskName ?? 'attention_mask';
  const wanted = options.outputName ?? 'last_hidden_state';
  if (!session.inputNames.includes(inputIds)) {
    throw new DataError(
      `${path} has no input '${inputIds}' (it has ${session.inputNames.join(', ')}); set inputIdsName`,
    );
  }
  const attentionMask = session.inputNames.includes(maskName) ? maskName : undefined;
  const unfed = session.inputNames.filter((name) => name !== inputIds && name !== attentionMask);
  if (unfed.length) {
    throw new DataError(`${path} also needs inputs ${unfed.join(', ')}; only token ids and an attention mask are fed`);
  }
  let output = wanted;
  if (!session.outputNames.includes(wanted)) {
    if (options.outputName !== undefined || session.outputNames.length !== 1) {
      throw new DataError(
        `${path} has no output '${wanted}' (it has ${session.outputNames.join(', ')}); set outputName`,
      );
    }
    output = session.outputNames[0];
  }
  // Shapes from the model's metadata (onnxruntime ≥ 1.22); older runtimes give none.
  const meta = (list: readonly OrtValueMetadata[] | undefined, name: string) => {
    const m = list?.find((v) => v.name === name);
    return m?.isTensor ? m : undefined;
  };
  const idsMeta = meta(session.inputMetadata, inputIds);
  const outMeta = meta(session.outputMetadata, output);
  const length = idsMeta?.shape[1];
  const width = outMeta?.shape[2];
  return {
    inputIds,
    attentionMask,
    output,
    intType: idsMeta?.type === 'int32' ? 'int32' : 'int64',
    fixedLength: typeof length === 'number' && length > 0 ? length : undefined,
    width: typeof width === 'number' && width > 0 ? width : undefined,
  };
}

/**
 * Tokenizes to L tokens, feeds the model only up to the batch's longest row (unless its length
 * is fixed: attention is masked, so the real positions do not depend on how much padding
 * follows, and T5-XL at 20 tokens instead of 128 is much cheaper), then pads the features back
 * to L with zeros.
 */
async function runBatch(
  ort: OrtRuntime,
  session: OrtSession,
  io: ModelIo,
  tokenizer: BatchTokenizer,
  captions: string[],
  L: number,
): Promise<EncodedTextArrays & { width: number }> {
  const B = captions.length;
  const batch = tokenizer.encodeBatch(captions, L);
  const fed = io.fixedLength ?? Math.max(1, ...batch.lengths);
  // The first `fed` columns of a [B, L] batch, as the model's integer type.
  const columns = (values: Int32Array): OrtTensor => {
    const cut = new Int32Array(B * fed);
    for (let b = 0; b < B; b++) cut.set(values.subarray(b * L, b * L + fed), b * fed);
    if (io.intType === 'int32') return new ort.Tensor('int32', cut, [B, fed]);
    return new ort.Tensor(
      'int64',
      BigInt64Array.from(cut, (v) => BigInt(v)),
      [B, fed],
    );
  };
  const feeds: Record<string, OrtTensor> = { [io.inputIds]: columns(batch.ids) };
  if (io.attentionMask) feeds[io.attentionMask] = columns(batch.attentionMask);
  const y = (await session.run(feeds, [io.output]))[io.output];
  try {
    if (y.type !== 'float32' || y.dims.length !== 3 || y.dims[0] !== B || y.dims[1] !== fed) {
      const got = `${y.type} [${y.dims.join(', ')}]`;
      throw new DataError(`ONNX text encoder output '${io.output}' is ${got}, expected float32 [${B}, ${fed}, D]`);
    }
    const D = y.dims[2];
    const data = y.data as Float32Array;
    const features = new Float32Array(B * L * D);
    const mask = new Uint8Array(B * L);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < L; t++) {
        if (!batch.attentionMask[b * L + t]) continue;
        mask[b * L + t] = 1;
        features.set(data.subarray((b * fed + t) * D, (b * fed + t + 1) * D), (b * L + t) * D);
      }
    }
    return { features, mask, width: D };
  } finally {
    y.dispose();
    for (const t of Object.values(feeds)) t.dispose();
  }
}
