/** Test-only settings shared by the eval tests (not part of the app). */
import type { ProxyClipShape } from './proxy/proxy-clip.js';

/** A small proxy at 16 px on the 169 smileys: the same code as the default one, trained in ~20 s on the cpu backend. */
export const SMALL_PROXY = {
  categories: ['Smileys & Emotion'],
  shape: { size: 16, channels: [8, 16, 16, 16], embedDim: 16, textWidth: 32, maxTokens: 8 } satisfies ProxyClipShape,
  training: { steps: 150, batchSize: 32, lr: 3e-3 },
};
