import { CheckpointError, type ParamSpec } from '@matryoshka-ts/core';
import { type TensorEntry, toFloat32 } from './dtypes.js';

/** Something that yields state-dict tensors by name: a decoded file or an open `SafetensorsFile`. */
export interface TensorSource {
  names: string[] | Iterable<string>;
  read(name: string): TensorEntry;
}

/** Wraps an in-memory map of tensors as a `TensorSource`. */
export function mapSource(tensors: Map<string, TensorEntry>): TensorSource {
  return { names: [...tensors.keys()], read: (name) => tensors.get(name)! };
}

/** A state dict that does not fit the model: a user error (`CheckpointError`, CHECKPOINT_INVALID). */
export class CheckpointMismatchError extends CheckpointError {
  constructor(
    readonly missing: string[],
    readonly unexpected: string[],
    readonly wrongShape: string[],
  ) {
    const parts: string[] = [];
    const list = (label: string, keys: string[]) => {
      if (keys.length)
        parts.push(`${label} (${keys.length}): ${keys.slice(0, 50).join(', ')}${keys.length > 50 ? ', …' : ''}`);
    };
    list('missing keys', missing);
    list('unexpected keys', unexpected);
    list('shape mismatches', wrongShape);
    super(`checkpoint does not match the model:\n  ${parts.join('\n  ')}`);
    this.name = 'CheckpointMismatchError';
  }
}

/** PyTorch shape of a parameter given our shape and layout. */
export function torchShape(spec: Pick<ParamSpec, 'shape' | 'layout'>): number[] {
  const s = spec.shape;
  if (spec.layout === 'conv2d') return [s[3], s[2], s[0], s[1]]; // HWIO → OIHW
  if (spec.layout === 'conv1d') return [s[2], s[1], s[0]]; // [K, in, out] → [out, in, K]
  if (spec.layout === 'linear') return [s[1], s[0]]; // [in, out] → [out, in]
  return [...s];
}

/**
 * Copies `data` between our layout and PyTorch's. For each element, `ours` is its index in our
 * layout (HWIO / [in, out]) and `torch` its index in PyTorch's (OIHW / [out, in]).
 */
function convertLayout(spec: Pick<ParamSpec, 'shape' | 'layout'>, data: Float32Array, toTorch: boolean): Float32Array {
  const out = new Float32Array(data.length);
  const move = (ours: number, torch: number) => {
    if (toTorch) out[torch] = data[ours];
    else out[ours] = data[torch];
  };
  if (spec.layout === 'conv2d') {
    const [kh, kw, ci, co] = spec.shape;
    for (let o = 0; o < co; o++)
      for (let i = 0; i < ci; i++)
        for (let h = 0; h < kh; h++)
          for (let w = 0; w < kw; w++) move(((h * kw + w) * ci + i) * co + o, ((o * ci + i) * kh + h) * kw + w);
  } else if (spec.layout === 'conv1d') {
    const [k, ci, co] = spec.shape;
    for (let o = 0; o < co; o++)
      for (let i = 0; i < ci; i++) for (let t = 0; t < k; t++) move((t * ci + i) * co + o, (o * ci + i) * k + t);
  } else if (spec.layout === 'linear') {
    const [ni, no] = spec.shape;
    for (let o = 0; o < no; o++) for (let i = 0; i < ni; i++) move(i * no + o, o * ni + i);
  } else out.set(data);
  return out;
}

/** OIHW → HWIO, [out, in, K] → [K, in, out] or [out, in] → [in, out]; vectors and tables are copied as they are. */
export function fromTorchLayout(spec: Pick<ParamSpec, 'shape' | 'layout'>, data: Float32Array): Float32Array {
  return convertLayout(spec, data, false);
}

/** The inverse of `fromTorchLayout`. */
export function toTorchLayout(spec: Pick<ParamSpec, 'shape' | 'layout'>, data: Float32Array): Float32Array {
  return convertLayout(spec, data, true);
}

export interface ImportOptions {
  /**
   * Read every key under this prefix in the source (e.g. `inner_unet.` to take the inner model
   * out of a nested checkpoint). Applied to the source names, not to ours.
   */
  sourcePrefix?: string;
  /**
   * Write into our keys under this prefix (e.g. `inner_unet.` to load a 64 px model into the inner
   * part of a 256 px one).
   */
  targetPrefix?: string;
  /** Accept source keys that the model does not have (default false: they are an error). */
  allowUnexpected?: boolean;
  /** Accept model keys the source lacks; they keep their current values (default false). */
  allowMissing?: boolean;
}

/**
 * Converts an official ml-mdm state dict (its key names, PyTorch layouts) into our parameter
 * values, keyed by our names. Missing, unexpected and wrongly shaped keys are all listed in one
 * `CheckpointMismatchError`.
 */
export function importMlMdmStateDict(
  specs: ParamSpec[],
  source: TensorSource,
  options: ImportOptions = {},
): Map<string, Float32Array> {
  const srcPrefix = options.sourcePrefix ?? '';
  const dstPrefix = options.targetPrefix ?? '';
  const wanted = specs.filter((s) => s.name.startsWith(dstPrefix));
  const byName = new Map(wanted.map((s) => [s.name.slice(dstPrefix.length), s]));
  const sourceNames = [...source.names].filter((n) => n.startsWith(srcPrefix)).map((n) => n.slice(srcPrefix.length));
  const present = new Set(sourceNames);
  const missing = options.allowMissing
    ? []
    : [...byName.keys()].filter((k) => !present.has(k)).map((k) => srcPrefix + k);
  const unexpected = options.allowUnexpected ? [] : sourceNames.filter((k) => !byName.has(k)).map((k) => srcPrefix + k);
  const wrongShape: string[] = [];
  const out = new Map<string, Float32Array>();
  for (const key of sourceNames) {
    const spec = byName.get(key);
    if (!spec) continue;
    const entry = source.read(srcPrefix + key);
    const expected = torchShape(spec);
    if (entry.shape.join() !== expected.join()) {
      wrongShape.push(`${srcPrefix + key} [${entry.shape}] (model expects [${expected}])`);
      continue;
    }
    out.set(spec.name, fromTorchLayout(spec, toFloat32(entry.data)));
  }
  if (missing.length || unexpected.length || wrongShape.length)
    throw new CheckpointMismatchError(missing, unexpected, wrongShape);
  return out;
}

/** Converts our parameter values into an ml-mdm state dict (PyTorch names and layouts, float32). */
export function exportMlMdmStateDict(specs: ParamSpec[], values: Map<string, Float32Array>): Map<string, TensorEntry> {
  const out = new Map<string, TensorEntry>();
  const missing: string[] = [];
  for (const spec of specs) {
    const data = values.get(spec.name);
    if (!data) {
      missing.push(spec.name);
      continue;
    }
    out.set(spec.name, { dtype: 'F32', shape: torchShape(spec), data: toTorchLayout(spec, data) });
  }
  if (missing.length) throw new CheckpointMismatchError(missing, [], []);
  return out;
}
