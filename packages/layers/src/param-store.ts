import * as tf from '@tensorflow/tfjs-core';
import { type ParamSpec, Rng, sizeOf } from '@matryoshka-ts/core';

/** Initial values of one parameter, drawn from `rng`. */
export function initialValue(spec: ParamSpec, rng: Rng): Float32Array {
  const n = sizeOf(spec.shape);
  const out = new Float32Array(n);
  const init = spec.init;
  if (init.kind === 'ones') out.fill(1);
  else if (init.kind === 'fanInUniform') {
    const bound = 1 / Math.sqrt(init.fanIn);
    for (let i = 0; i < n; i++) out[i] = (2 * rng.uniform() - 1) * bound;
  } else if (init.kind === 'normal') for (let i = 0; i < n; i++) out[i] = rng.normal() * init.std;
  else if (init.kind === 'values') {
    if (init.values.length !== n)
      throw new Error(`'${spec.name}': ${init.values.length} fixed values for [${spec.shape}]`);
    out.set(init.values);
  }
  return out;
}

export interface AllocateOptions {
  /** Seed for the initial weights (default 0); specs draw from one stream in their order. */
  seed?: number;
  /** Start from these values (our names and layouts) instead of a random initialisation. */
  weights?: Map<string, Float32Array>;
}

/**
 * One variable per spec, in spec order: the given weights where present, else drawn; trainable
 * unless the spec says `trainable: false`.
 */
export function allocateParams(specs: readonly ParamSpec[], options: AllocateOptions = {}): Map<string, tf.Variable> {
  const rng = new Rng(options.seed ?? 0);
  const params = new Map<string, tf.Variable>();
  for (const spec of specs) {
    const given = options.weights?.get(spec.name);
    if (given && given.length !== sizeOf(spec.shape))
      throw new Error(`weights for '${spec.name}' have ${given.length} values, expected [${spec.shape}]`);
    const values = given ?? initialValue(spec, rng);
    // Unnamed: tfjs variable names are global, and several models (EMA, teacher) must coexist.
    const initial = tf.tensor(values, spec.shape, 'float32');
    params.set(spec.name, tf.variable(initial, spec.trainable ?? true));
    initial.dispose();
  }
  return params;
}

/** Overwrites weights by name (our layouts). Unknown names are an error; absent names keep their values. */
export function assignWeights(params: Map<string, tf.Variable>, values: Map<string, Float32Array>): void {
  for (const [name, data] of values) {
    const v = params.get(name);
    if (!v) throw new Error(`unknown parameter '${name}'`);
    if (data.length !== v.size) throw new Error(`'${name}': ${data.length} values for shape [${v.shape}]`);
    tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')));
  }
}

/** Copies every weight out (our names and layouts). */
export function readWeights(params: Map<string, tf.Variable>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of params) out.set(name, Float32Array.from(v.dataSync() as Float32Array));
  return out;
}

/** `readWeights` with asynchronous reads: on every backend (WebGPU in Node has no synchronous read). */
export async function readWeightsAsync(params: Map<string, tf.Tensor>): Promise<Map<string, Float32Array>> {
  const names = [...params.keys()];
  const values = await Promise.all(names.map((name) => params.get(name)!.data() as Promise<Float32Array>));
  return new Map(names.map((name, i) => [name, Float32Array.from(values[i])]));
}

/** Number of scalars over all specs. */
export function paramCountOf(specs: readonly ParamSpec[]): number {
  return specs.reduce((n, s) => n + sizeOf(s.shape), 0);
}
