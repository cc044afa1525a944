// The paper's baselines (§4.1, Appendix D) next to MDM, on the same blocks: a simple DM is a
// single-level NestedUNet (or one trained on its top level only), a cascade's super-resolution
// stage is a NestedUNet with `lowResCondition`, and a latent DM trains on an autoencoder's latents.
export { cascadeResolutions } from './cascade.js';
export { topLevelLossWeights } from './simple.js';
export {
  augmentForSampling,
  augmentForTraining,
  checkAugmentationLevel,
} from './noise-augmentation.js';
export type { AugmentedLowRes } from './noise-augmentation.js';
export {
  LATENT_CACHE_FORMAT,
  LATENT_CACHE_VERSION,
  LatentCache,
  fillLatentCache,
  latentPartRange,
  openLatentCache,
} from './latent-cache.js';
export { latentCacheParts, mergeLatentCacheParts } from './latent-cache-parts.js';
export type { LatentMergeReport } from './latent-cache-parts.js';
export type {
  FillLatentCacheOptions,
  LatentBatch,
  LatentCacheMeta,
  LatentCacheOptions,
  LatentCachePart,
  LatentEncodeFn,
  LatentRecord,
} from './latent-cache.js';
