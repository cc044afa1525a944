import { FeatureStats } from './feature-stats.js';
import { type ResizeMethod, type Uint8Image, resizeForFid } from './resize.js';

/**
 * A network that turns images into feature vectors for the Fréchet distance (the FID Inception's
 * pool3, a TF.js graph, or the proxy trained on the bundled data). Images go in as uint8 RGB, as
 * the standard tools quantise samples (saved PNGs) before features.
 */
export interface FeatureExtractor {
  /** Names the network and its preprocessing: statistics are comparable only between equal ids. */
  readonly id: string;
  /** Feature width d. */
  readonly dim: number;
  /** The preprocessing, in words (e.g. "pytorch-fid bilinear to 299"), recorded in every report. */
  readonly resize: string;
  /** True for a stand-in network whose numbers are not comparable with published FIDs. */
  readonly proxy: boolean;
  /** Features of a batch of images, [N, dim] row-major. */
  features(images: Uint8Image[]): Promise<Float32Array>;
  dispose(): Promise<void> | void;
}

/** How a network expects its input: value range (after the resize) and memory layout. */
export interface NetworkInput {
  /** Input edge length (299 for the FID Inception). */
  size: number;
  /** pytorch-fid resizes bilinearly like torch; clean-fid with PIL's antialiased bicubic. */
  resize: ResizeMethod;
  /**
   * Value range the network takes: pytorch-fid's InceptionV3 (normalize_input=True) takes [0, 1],
   * clean-fid's takes 0…255, TF-style networks often [−1, 1].
   */
  range: '0-1' | '0-255' | '-1-1';
  layout: 'nchw' | 'nhwc';
}

/** Range each resize method produces: pytorch-fid's [0, 1], clean-fid's 0…255. */
const RESIZE_RANGE: Record<ResizeMethod, number> = { 'pytorch-fid': 1, 'clean-fid': 255 };
const TARGET: Record<NetworkInput['range'], [number, number]> = { '0-1': [0, 1], '0-255': [0, 255], '-1-1': [-1, 1] };

/** One float32 input batch for `input`: each image resized, rescaled to the range, laid out. */
export function networkInputBatch(images: Uint8Image[], input: NetworkInput): Float32Array {
  const s = input.size;
  const plane = s * s;
  const out = new Float32Array(images.length * 3 * plane);
  const [lo, hi] = TARGET[input.range];
  const scale = (hi - lo) / RESIZE_RANGE[input.resize];
  images.forEach((image, n) => {
    if (image.channels !== 3) throw new Error(`features: images must be RGB (3 channels), got ${image.channels}`);
    const r = resizeForFid(image, s, input.resize).data;
    const base = n * 3 * plane;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        const v = r[p * 3 + c] * scale + lo;
        out[input.layout === 'nchw' ? base + c * plane + p : base + p * 3 + c] = v;
      }
    }
  });
  return out;
}

/** Samples in [−1, 1] (HWC float) to uint8, as saving a PNG would: round((x + 1) · 127.5), clamped. */
export function quantizeToUint8(data: Float32Array, width: number, height: number, channels = 3): Uint8Image {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Math.max(0, Math.min(255, Math.round((data[i] + 1) * 127.5)));
  return { data: out, width, height, channels };
}

/**
 * Streams `images` through `extractor` in batches into float64 statistics; `onBatch` reports
 * progress (images done so far).
 */
export async function featureStatsOf(
  extractor: FeatureExtractor,
  images: AsyncIterable<Uint8Image> | Iterable<Uint8Image>,
  options: { batchSize?: number; onBatch?: (done: number) => void } = {},
): Promise<FeatureStats> {
  const stats = new FeatureStats(extractor.dim);
  const batchSize = options.batchSize ?? 32;
  let batch: Uint8Image[] = [];
  const flush = async () => {
    if (!batch.length) return;
    stats.add(await extractor.features(batch));
    batch = [];
    options.onBatch?.(stats.count);
  };
  for await (const image of images) {
    batch.push(image);
    if (batch.length === batchSize) await flush();
  }
  await flush();
  return stats;
}
