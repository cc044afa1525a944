import * as tf from '@tensorflow/tfjs-core';
import type { TextEncoder } from '@matryoshka-ts/text-encoders';

/**
 * The proxy CLIP: a small contrastive image–text model trained on the bundled emoji, so FID and
 * CLIP-score reports (and their plots) run offline. Its numbers rank models of THIS data set; they
 * are not comparable with the Inception FID or OpenAI CLIP scores of papers, and every report
 * says "proxy".
 *
 * Image tower: four 3×3 stride-2 convolutions with SiLU (64 → 4 px); the spatial means of all four
 * layers are the FID features (the pool3 analogue); a linear map of the last layer's → the
 * embedding. A training-only head classifies the image's degradation (none, blur, noise) from the
 * FID features, so they measure image quality as well as content.
 * Text tower: the bundled hashed-word encoder's token features, masked mean, MLP → the embedding.
 */
export interface ProxyClipShape {
  /** Input edge (images are resized to it). */
  size: number;
  /** Channels of the four convolutions; the last is the FID feature width. */
  channels: [number, number, number, number];
  /** Shared embedding width. */
  embedDim: number;
  /** Token feature width and count of the hashed-word encoder. */
  textWidth: number;
  maxTokens: number;
}

export const PROXY_SHAPE: ProxyClipShape = {
  size: 64,
  channels: [32, 64, 128, 128],
  embedDim: 64,
  textWidth: 64,
  maxTokens: 12,
};

export type ProxyParams = Map<string, tf.Tensor>;

/**
 * Degradations the image tower learns to tell apart while it learns to match captions: a
 * caption-matching network alone ignores blur and noise, and FID features must not.
 */
export const DEGRADATIONS = ['none', 'blur', 'noise'] as const;

/** Parameter names and shapes (HWIO convolutions, [in, out] linear maps). */
export function proxySpecs(s: ProxyClipShape): Array<[string, number[]]> {
  const specs: Array<[string, number[]]> = [];
  let cin = 3;
  s.channels.forEach((c, i) => {
    specs.push([`image.conv${i}.w`, [3, 3, cin, c]], [`image.conv${i}.b`, [c]]);
    cin = c;
  });
  specs.push(['image.proj.w', [cin, s.embedDim]]);
  // Training-only head: which degradation (none, blur, noise) an image went through.
  specs.push(
    ['image.degradation.w', [s.channels.reduce((a, b) => a + b, 0), DEGRADATIONS.length]],
    ['image.degradation.b', [DEGRADATIONS.length]],
  );
  specs.push(
    ['text.fc0.w', [s.textWidth, 2 * s.embedDim]],
    ['text.fc0.b', [2 * s.embedDim]],
    ['text.fc1.w', [2 * s.embedDim, s.embedDim]],
  );
  return specs;
}

/** He-style initial weights from a seeded normal generator. */
export function initProxyParams(s: ProxyClipShape, normal: () => number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of proxySpecs(s)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.length === 4 ? shape[0] * shape[1] * shape[2] : shape[0];
    const std = name.endsWith('.b') ? 0 : Math.sqrt(2 / fanIn);
    out.set(
      name,
      Float32Array.from({ length: size }, () => normal() * std),
    );
  }
  return out;
}

/** Width of the FID features: every layer's pooled channels. */
export const proxyFeatureDim = (s: ProxyClipShape) => s.channels.reduce((a, b) => a + b, 0);

/**
 * FID features: [N, size, size, 3] in [−1, 1] → [N, Σ channels], the spatial means of every
 * layer. The early layers' means measure edge and texture energy, so blur and noise move the
 * statistics (the last layer alone, trained for matching captions, barely sees them).
 */
export function proxyImageFeatures(P: ProxyParams, x: tf.Tensor4D, s: ProxyClipShape): tf.Tensor2D {
  return tf.tidy(() => {
    let h: tf.Tensor4D = x;
    const pooled: tf.Tensor2D[] = [];
    for (let i = 0; i < s.channels.length; i++) {
      h = tf.add(tf.conv2d(h, P.get(`image.conv${i}.w`) as tf.Tensor4D, 2, 'same'), P.get(`image.conv${i}.b`)!);
      h = tf.mul(h, tf.sigmoid(h));
      pooled.push(tf.mean(h, [1, 2]) as tf.Tensor2D);
    }
    return tf.concat(pooled, 1);
  });
}

/** Unit-length image embeddings from the last layer's pooled channels of `features`. */
export function proxyImageEmbed(P: ProxyParams, features: tf.Tensor2D, s: ProxyClipShape): tf.Tensor2D {
  const last = s.channels[s.channels.length - 1];
  return tf.tidy(() =>
    normalizeRows(
      tf.matMul(tf.slice(features, [0, features.shape[1] - last], [-1, last]), P.get('image.proj.w') as tf.Tensor2D),
    ),
  );
}

/** Unit-length caption embeddings from the encoder's token features. */
export function proxyTextEmbed(P: ProxyParams, encoder: TextEncoder, captions: string[]): tf.Tensor2D {
  const { tokens, mask } = encoder.encode(captions);
  const out = tf.tidy(() => {
    const m = tf.expandDims(mask, 2);
    const pooled = tf.div(tf.sum(tf.mul(tokens, m), 1), tf.maximum(tf.sum(m, 1), 1)) as tf.Tensor2D;
    let h = tf.add(tf.matMul(pooled, P.get('text.fc0.w') as tf.Tensor2D), P.get('text.fc0.b')!) as tf.Tensor2D;
    h = tf.mul(h, tf.sigmoid(h));
    return normalizeRows(tf.matMul(h, P.get('text.fc1.w') as tf.Tensor2D));
  });
  tf.dispose([tokens, mask]);
  return out;
}

function normalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, tf.sqrt(tf.add(tf.sum(tf.square(x), 1, true), 1e-12)));
}
