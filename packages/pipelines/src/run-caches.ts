import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadAutoencoder } from '@matryoshka-ts/autoencoder';
import { ConfigError } from '@matryoshka-ts/core';
import type { ImageDataset } from '@matryoshka-ts/data';
import { resolveConfig } from '@matryoshka-ts/nested-unet';
import type { CacheFillSummary } from './cache-summary.js';
import { type TrainConfig, isMultiStage, modelConfigOf, runKindOf } from './config.js';
import { openTrainingData, previewConditions } from './data-source.js';
import { fillTextFeatureCache, frozenEncoderOf } from './frozen-encoder.js';
import { fillLatentCacheShard, fillLatentCacheWithParts, latentDataset, latentStageOf } from './latent-data.js';
import type { Shard } from './shard.js';
import { LATENT_RUN, runStages } from './stages.js';
import { trainAutoencoderStage } from './train-autoencoder.js';

export interface FillRunCachesOptions {
  /** Fill only shard i of n's part of each cache (merged later, by a call without it or by training). */
  shard?: Shard;
  /** Progress and warnings, one line each. */
  log?: (line: string) => void;
}

/** The latent cache a run (or a latent stage's config) fills before training: its autoencoder, images and root. */
async function latentCacheOf(
  config: TrainConfig,
  out: string,
): Promise<{ autoencoder: string; dataset: ImageDataset; root: string } | undefined> {
  if (config.stage?.kind === 'latent') {
    const stage = latentStageOf(config, out);
    return { autoencoder: stage.autoencoder, dataset: latentDataset(config, stage.imageResolution), root: stage.cache };
  }
  if (runKindOf(config) !== 'latent') return undefined;
  const stage = runStages(config)[0];
  if (stage.kind !== 'autoencoder') throw new Error('runStages: a latent run starts with its autoencoder');
  const weights = join(out, LATENT_RUN.weights);
  if (!existsSync(weights)) {
    if (!stage.weights)
      throw new ConfigError(
        `the latent cache holds the run's autoencoder's encodings, and ${weights} does not exist yet: ` +
          'train the autoencoder stage first (mdm-train train fills the cache right after it), ' +
          'or name pretrained weights (model.autoencoder.weights)',
      );
    // Pretrained weights: the stage only checks them and writes its copy (atomically), as training
    // would, so the cache key (config and weights of that copy) is the one training computes.
    await trainAutoencoderStage(stage, config, join(out, stage.dir), { resume: false });
  }
  return {
    autoencoder: weights,
    dataset: latentDataset(config, stage.imageResolution),
    root: join(out, LATENT_RUN.cache),
  };
}

/**
 * Every caption training prepares the frozen encoder with: for each diffusion model of the run,
 * the empty caption (guidance), the sample grid's and the data's — as `train` does.
 */
export async function runCaptions(config: TrainConfig): Promise<string[]> {
  const configs = isMultiStage(config)
    ? runStages(config).flatMap((s) => (s.kind === 'diffusion' ? [s.config] : []))
    : [config];
  const all = new Set<string>(['']);
  for (const c of configs) {
    if (c.stage?.kind === 'latent') {
      const dataset = latentDataset(c, c.stage.imageResolution);
      for (const caption of previewConditions(dataset, c.sampling.n).captions) all.add(caption);
      for (let i = 0; i < dataset.size; i++) all.add(dataset.get(i).caption);
      continue;
    }
    const top = resolveConfig(modelConfigOf(c)).levels[0];
    const data = await openTrainingData(c, top.resolution, top.frames);
    try {
      for (const caption of (await data.preview(c.sampling.n)).captions) all.add(caption);
      for (const caption of await data.captions()) all.add(caption);
    } finally {
      await data.close();
    }
  }
  return [...all];
}

/**
 * Fills the caches a run fills before it trains (`mdm-train cache`): a latent run's (or latent
 * stage's) latent cache, and a frozen ONNX text encoder's feature cache. With `shard`, only
 * shard i of n's contiguous range (samples; sorted distinct captions), each into its own part
 * file; without it, the parts found are merged in shard order and the rest is encoded. Training
 * merges parts the same way when it opens the caches. A run with neither cache is refused.
 */
export async function fillRunCaches(
  config: TrainConfig,
  out: string,
  options: FillRunCachesOptions = {},
): Promise<CacheFillSummary[]> {
  const log = options.log ?? (() => {});
  const latent = await latentCacheOf(config, out);
  const frozen = frozenEncoderOf(config);
  if (!latent && !frozen)
    throw new ConfigError(
      `nothing to cache: a ${runKindOf(config)} run with ${config.conditioning.kind} conditioning` +
        `${config.conditioning.kind === 'text' ? ` (${config.conditioning.encoder.kind} encoder)` : ''} ` +
        'has neither a latent cache nor a frozen ONNX text encoder',
    );
  const summaries: CacheFillSummary[] = [];
  if (latent) {
    const autoencoder = loadAutoencoder(latent.autoencoder);
    try {
      if (options.shard) {
        summaries.push(await fillLatentCacheShard(autoencoder, latent.dataset, latent.root, options.shard, log));
      } else {
        const { cache, summary } = await fillLatentCacheWithParts(autoencoder, latent.dataset, latent.root, log);
        cache.close();
        summaries.push(summary);
      }
    } finally {
      autoencoder.dispose();
    }
  }
  if (frozen) summaries.push(await fillTextFeatureCache(config, await runCaptions(config), { ...options, log }));
  return summaries;
}
