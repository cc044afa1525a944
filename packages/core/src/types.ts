/**
 * What the network predicts. `v` = √ᾱ·ε − √(1−ᾱ)·x0 (Salimans & Ho), the paper's choice and
 * the official code's.
 */
export type PredictionType = 'eps' | 'x0' | 'v';

/**
 * How a parameter is laid out in our tensors, so importers know how to convert foreign layouts:
 * `conv2d` is HWIO here (PyTorch: OIHW), `conv1d` is [K, in, out] here (PyTorch: [out, in, K]: the
 * video model's convolutions along time), `linear` is [in, out] here (PyTorch: [out, in]),
 * `vector` (biases, norm scales) and `table` (embedding rows) are the same everywhere.
 */
export type ParamLayout = 'conv2d' | 'conv1d' | 'linear' | 'vector' | 'table';

/** How a parameter starts before training. */
export type ParamInit =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  /** U(−1/√fan_in, 1/√fan_in): PyTorch's default for Conv2d/Linear weights and biases. */
  | { kind: 'fanInUniform'; fanIn: number }
  | { kind: 'normal'; std: number }
  /** Fixed values (e.g. rotary position frequencies), in our layout. */
  | { kind: 'values'; values: readonly number[] };

/** One named parameter: the single source for allocation, counting and import/export. */
export interface ParamSpec {
  /** Name in the official code's state-dict convention (e.g. `inner_unet.conv_in.weight`). */
  name: string;
  /** Shape in our layout. */
  shape: number[];
  layout: ParamLayout;
  init: ParamInit;
  /**
   * false for a buffer the official code stores with the weights but never trains (rotary
   * frequencies): it is saved and loaded, but gets no gradient, Adam state or EMA. Default true.
   */
  trainable?: boolean;
}

/** Number of scalars in a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Where tensors are computed. `auto` picks the fastest one that is installed: `tensorflow`
 * (libtensorflow via tfjs-node, CUDA with tfjs-node-gpu), then `webgpu` (a hardware GPU adapter
 * through Dawn's Node bindings; a software one only when asked for), then `native` (the wasm backend with
 * convolutions and matrix products in the `@matryoshka-ts/kernels-native` addon), then `wasm`,
 * then `cpu` (pure JavaScript).
 */
export type BackendName = 'auto' | 'native' | 'cpu' | 'wasm' | 'webgpu' | 'tensorflow';

/** Every accepted backend name, for command-line choices. */
export const BACKEND_NAMES = [
  'auto',
  'native',
  'cpu',
  'wasm',
  'webgpu',
  'tensorflow',
] as const satisfies readonly BackendName[];
