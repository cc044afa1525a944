import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, DataError } from '@matryoshka-ts/core';
import { conv2d, paramsFrom, type Params } from '@matryoshka-ts/layers';
import {
  type OnnxGraph,
  type OnnxTensor,
  onnxTensorFloat32,
  onnxTensorResolver,
  parseOnnxModel,
  readOnnxModel,
} from './onnx-weights.js';

/**
 * LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
 * Metric"), VGG variant, version 0.1, as the `lpips` package computes it: the perceptual term of
 * latent diffusion's autoencoder loss. Run in tfjs ops so that ∂LPIPS/∂x̂ flows on any backend;
 * the weights come from a local ONNX export (see README.md beside this file).
 */

/** One 3×3 convolution of VGG16 `features`, named as in lpips's state dict (`net.slice{k}.{index}`). */
interface VggConv {
  name: string;
  cin: number;
  cout: number;
  /** Which of the five slices (0-based) it belongs to; each slice but the first opens with a 2×2 max-pool. */
  slice: number;
}

/** VGG16 up to relu5_3: 13 convolutions in five slices ending at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3. */
export const VGG_CONVS: readonly VggConv[] = [
  { name: 'net.slice1.0', cin: 3, cout: 64, slice: 0 },
  { name: 'net.slice1.2', cin: 64, cout: 64, slice: 0 },
  { name: 'net.slice2.5', cin: 64, cout: 128, slice: 1 },
  { name: 'net.slice2.7', cin: 128, cout: 128, slice: 1 },
  { name: 'net.slice3.10', cin: 128, cout: 256, slice: 2 },
  { name: 'net.slice3.12', cin: 256, cout: 256, slice: 2 },
  { name: 'net.slice3.14', cin: 256, cout: 256, slice: 2 },
  { name: 'net.slice4.17', cin: 256, cout: 512, slice: 3 },
  { name: 'net.slice4.19', cin: 512, cout: 512, slice: 3 },
  { name: 'net.slice4.21', cin: 512, cout: 512, slice: 3 },
  { name: 'net.slice5.24', cin: 512, cout: 512, slice: 4 },
  { name: 'net.slice5.26', cin: 512, cout: 512, slice: 4 },
  { name: 'net.slice5.28', cin: 512, cout: 512, slice: 4 },
];

/** Channels of the five taps; `lin{k}` weighs tap k (its 1×1 conv follows a dropout, hence `.model.1`). */
export const LPIPS_TAP_CHANNELS = [64, 128, 256, 512, 512] as const;
const linName = (k: number) => `lin${k}.model.1`;

/** The ScalingLayer: inputs in [−1, 1] are shifted and scaled to the statistics VGG was trained on. */
const SHIFT = [-0.03, -0.088, -0.188];
const SCALE = [0.458, 0.448, 0.45];
/** Added to the feature norm (lpips's `normalize_tensor`). */
const NORM_EPS = 1e-10;
/** Four 2×2 pools must leave at least one pixel for relu5_3. */
export const LPIPS_MIN_SIZE = 16;

/** A tensor in PyTorch layout (conv weights OIHW). */
export interface LpipsTensor {
  shape: number[];
  data: Float32Array;
}

/** LPIPS weights under lpips's state-dict names (`net.slice1.0.weight`, …, `lin4.model.1.weight`). */
export type LpipsStateDict = Map<string, LpipsTensor>;

/** Every parameter LPIPS reads, with its PyTorch shape. */
export function lpipsParameterShapes(): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const c of VGG_CONVS) {
    shapes.set(`${c.name}.weight`, [c.cout, c.cin, 3, 3]);
    shapes.set(`${c.name}.bias`, [c.cout]);
  }
  LPIPS_TAP_CHANNELS.forEach((ch, k) => shapes.set(`${linName(k)}.weight`, [1, ch, 1, 1]));
  return shapes;
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);
const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** Every problem with a state dict (missing, wrong shape, negative lin weight); empty when it fits. */
function stateDictProblems(dict: LpipsStateDict, origin: (name: string) => string = () => ''): string[] {
  const problems: string[] = [];
  for (const [name, shape] of lpipsParameterShapes()) {
    const t = dict.get(name);
    if (!t) problems.push(`${name}: missing`);
    else if (!sameShape(t.shape, shape))
      problems.push(`${name}${origin(name)}: expected ${fmt(shape)}, found ${fmt(t.shape)}`);
    else if (t.data.length !== shape.reduce((n, d) => n * d, 1))
      problems.push(`${name}${origin(name)}: ${t.data.length} values for ${fmt(shape)}`);
    // lpips clamps the lin weights at 0 while training; a negative one means these are not LPIPS weights.
    else if (name.startsWith('lin') && t.data.some((v) => v < 0))
      problems.push(`${name}${origin(name)}: has negative weights, which LPIPS never learns`);
  }
  return problems;
}

// ---------------------------------------------------------------- ONNX → state dict

interface OnnxConv {
  node: string;
  weight: OnnxTensor;
  bias?: OnnxTensor;
}

/**
 * The distinct convolutions of the graph in node order, each with its stored weight and bias. An
 * LPIPS export runs VGG twice (on x and on y) with the same weights, so a Conv whose weight was seen
 * already — by name, through Identity nodes, or by identical values — is that first one again.
 */
function distinctConvs(graph: OnnxGraph, source: string): { convs: OnnxConv[]; values: Map<OnnxConv, Float32Array> } {
  const resolve = onnxTensorResolver(graph);
  const byName = new Set<string>();
  const convs: OnnxConv[] = [];
  const values = new Map<OnnxConv, Float32Array>();
  for (const node of graph.nodes) {
    if (node.opType !== 'Conv') continue;
    const label = node.name || node.outputs[0];
    const weight = resolve(node.inputs[1] ?? '');
    if (!weight)
      throw new CheckpointError(
        `${source}: Conv node '${label}' computes its weight '${node.inputs[1]}' instead of storing it; ` +
          'export with the weights as initializers (do_constant_folding=True)',
      );
    if (byName.has(weight.name)) continue;
    byName.add(weight.name);
    const biasInput = node.inputs[2];
    const bias = biasInput ? resolve(biasInput) : undefined;
    if (biasInput && !bias)
      throw new CheckpointError(
        `${source}: Conv node '${label}' computes its bias '${biasInput}' instead of storing it`,
      );
    const conv: OnnxConv = { node: label, weight, bias };
    const data = onnxTensorFloat32(weight, source);
    const twin = convs.find((c) => sameShape(c.weight.dims, weight.dims) && sameValues(values.get(c)!, data));
    if (twin) continue;
    convs.push(conv);
    values.set(conv, data);
  }
  return { convs, values };
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Maps an LPIPS ONNX export to lpips's state-dict names by the order of its Conv nodes: the 13 VGG
 * convolutions (those with a bias) in order, then the 5 `lin` layers (no bias) in tap order.
 * Initializer names do not matter (`torch.onnx.export` may rename them `onnx::Conv_123`). Every
 * mismatch with the LPIPS VGG shapes is listed in one error.
 */
export function lpipsStateDictFromOnnx(graph: OnnxGraph, source = 'the ONNX model'): LpipsStateDict {
  const { convs, values } = distinctConvs(graph, source);
  const vgg = convs.filter((c) => c.bias);
  const lin = convs.filter((c) => !c.bias);
  const dict: LpipsStateDict = new Map();
  const origins = new Map<string, string>();
  const put = (name: string, tensor: OnnxTensor, data: () => Float32Array) => {
    dict.set(name, { shape: tensor.dims, data: data() });
    origins.set(name, ` (ONNX '${tensor.name}')`);
  };
  vgg.slice(0, VGG_CONVS.length).forEach((c, i) => {
    put(`${VGG_CONVS[i].name}.weight`, c.weight, () => values.get(c)!);
    put(`${VGG_CONVS[i].name}.bias`, c.bias!, () => onnxTensorFloat32(c.bias!, source));
  });
  lin
    .slice(0, LPIPS_TAP_CHANNELS.length)
    .forEach((c, k) => put(`${linName(k)}.weight`, c.weight, () => values.get(c)!));

  const problems: string[] = [];
  if (vgg.length !== VGG_CONVS.length)
    problems.push(`${vgg.length} distinct convolutions with a bias, where VGG16 up to relu5_3 has ${VGG_CONVS.length}`);
  if (lin.length !== LPIPS_TAP_CHANNELS.length)
    problems.push(
      `${lin.length} distinct convolutions without a bias, where LPIPS has ${LPIPS_TAP_CHANNELS.length} lin layers`,
    );
  problems.push(...stateDictProblems(dict, (name) => origins.get(name) ?? '').filter((p) => !p.endsWith(': missing')));
  if (problems.length)
    throw new CheckpointError(
      `${source} does not hold LPIPS VGG (v0.1) weights:\n  - ${problems.join('\n  - ')}\n` +
        "Export lpips.LPIPS(net='vgg') as README.md in @matryoshka-ts/autoencoder's perceptual folder shows.",
    );
  return dict;
}

// ---------------------------------------------------------------- the metric

/**
 * LPIPS distance with frozen weights: `distance(x, y)` = Σ_taps mean_hw( w_k · (x̂_k − ŷ_k)² ),
 * x̂_k the unit-normalised VGG features at tap k. Differentiable in x and y; the weights are plain
 * tensors (not variables), so optimisers never see them. Call `dispose()` when done.
 */
export class Lpips {
  private params: Map<string, tf.Tensor> | undefined;
  private readonly P: Params;

  private constructor(params: Map<string, tf.Tensor>) {
    this.params = params;
    this.P = paramsFrom(params);
  }

  /** LPIPS from an ONNX export of `lpips.LPIPS(net='vgg')` (weights embedded). */
  static fromOnnx(path: string): Lpips {
    return Lpips.fromStateDict(lpipsStateDictFromOnnx(readOnnxModel(path), path));
  }

  /** As `fromOnnx`, from the file's bytes. */
  static fromOnnxBytes(bytes: Uint8Array, source = 'the ONNX model'): Lpips {
    return Lpips.fromStateDict(lpipsStateDictFromOnnx(parseOnnxModel(bytes, source), source));
  }

  /** LPIPS from weights in PyTorch layout under lpips's names (e.g. a converted `vgg.pth`). */
  static fromStateDict(dict: LpipsStateDict): Lpips {
    const problems = stateDictProblems(dict);
    if (problems.length)
      throw new CheckpointError(`the LPIPS weights do not fit LPIPS VGG:\n  - ${problems.join('\n  - ')}`);
    const params = new Map<string, tf.Tensor>();
    for (const c of VGG_CONVS) {
      const w = dict.get(`${c.name}.weight`)!;
      // PyTorch convolutions are OIHW; tfjs wants HWIO.
      params.set(
        `${c.name}.weight`,
        tf.tidy(() => tf.transpose(tf.tensor4d(w.data, w.shape as [number, number, number, number]), [2, 3, 1, 0])),
      );
      params.set(`${c.name}.bias`, tf.tensor1d(dict.get(`${c.name}.bias`)!.data));
    }
    LPIPS_TAP_CHANNELS.forEach((ch, k) => {
      params.set(`${linName(k)}.weight`, tf.tensor2d(dict.get(`${linName(k)}.weight`)!.data, [ch, 1]));
    });
    return new Lpips(params);
  }

  /**
   * The LPIPS distance per sample, [B]. `x`, `y`: NHWC RGB images in [−1, 1] (lpips's default,
   * `normalize=False`), the same shape, at least 16 px on each side.
   */
  distance(x: tf.Tensor4D, y: tf.Tensor4D): tf.Tensor1D {
    if (!this.params) throw new Error('Lpips: used after dispose()');
    checkImages(x, y);
    const batch = x.shape[0];
    return tf.tidy(() => {
      // One VGG pass over x and y together: half the kernel launches of two.
      const taps = vggTaps(this.P, scaleInputs(tf.concat([x, y], 0)));
      const terms = taps.map((h, k) => {
        const [hx, hy] = tf.split(h, [batch, batch], 0) as tf.Tensor4D[];
        const d = tf.square(tf.sub(unitNormalize(hx), unitNormalize(hy)));
        // Spatial mean before the 1×1 lin layer: both are linear, so this equals lpips's order on B·C values.
        return tf.matMul(tf.mean(d, [1, 2]), this.P(`${linName(k)}.weight`)); // [B, 1]
      });
      return tf.reshape(tf.addN(terms), [batch]) as tf.Tensor1D;
    });
  }

  /** Frees the weights; the instance cannot be used after. */
  dispose(): void {
    if (!this.params) return;
    for (const t of this.params.values()) t.dispose();
    this.params = undefined;
  }
}

function checkImages(x: tf.Tensor4D, y: tf.Tensor4D): void {
  if (x.rank !== 4 || !sameShape(x.shape, y.shape))
    throw new DataError(`LPIPS compares two NHWC batches of one shape, got ${fmt(x.shape)} and ${fmt(y.shape)}`);
  const [, h, w, c] = x.shape;
  if (c !== 3) throw new DataError(`LPIPS takes RGB images (3 channels, NHWC), got ${c} channels`);
  if (h < LPIPS_MIN_SIZE || w < LPIPS_MIN_SIZE)
    throw new DataError(`LPIPS needs images of at least ${LPIPS_MIN_SIZE}×${LPIPS_MIN_SIZE} px, got ${h}×${w}`);
}

/** lpips's ScalingLayer: (x − shift) / scale per RGB channel. */
function scaleInputs(x: tf.Tensor4D): tf.Tensor4D {
  return tf.div(tf.sub(x, tf.tensor1d(SHIFT)), tf.tensor1d(SCALE));
}

/** VGG16 features at the five taps: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3. */
function vggTaps(P: Params, x: tf.Tensor4D): tf.Tensor4D[] {
  const taps: tf.Tensor4D[] = [];
  let h = x;
  for (let slice = 0; slice < LPIPS_TAP_CHANNELS.length; slice++) {
    if (slice > 0) h = tf.maxPool(h, 2, 2, 'valid');
    for (const c of VGG_CONVS) if (c.slice === slice) h = tf.relu(conv2d(P, c.name, h));
    taps.push(h);
  }
  return taps;
}

/**
 * Floor under Σ_c x² inside the square root: ∂√s/∂s is infinite at s = 0 (a pixel whose features
 * are all zero after ReLU), which would make the gradient NaN. It changes the value only where
 * every |x_c| < 1e-15, i.e. where the normalised features are below 1e-5 either way.
 */
const SUM_SQUARES_FLOOR = 1e-30;

/** lpips's `normalize_tensor`: x / (‖x‖₂ over channels + 1e-10). */
export function unitNormalize(x: tf.Tensor4D): tf.Tensor4D {
  const norm = tf.sqrt(tf.maximum(tf.sum(tf.square(x), -1, true), SUM_SQUARES_FLOOR));
  return tf.div(x, tf.add(norm, NORM_EPS));
}
