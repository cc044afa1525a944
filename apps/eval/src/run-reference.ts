import type { FeatureExtractor } from '@matryoshka-ts/metrics';
import type { OpenRun } from '@matryoshka-ts/pipelines';
import { type LabelledStats, datasetImages, referenceStats, statsOfImages } from './statistics.js';

/**
 * Reference statistics for a run's samples: `--reference` when given, otherwise the run's own
 * training images (its data set at the resolution it trained on).
 */
export async function runReference(
  run: OpenRun,
  extractor: FeatureExtractor,
  reference?: string,
): Promise<LabelledStats> {
  if (reference) return referenceStats(reference, extractor);
  const dataset = run.dataset();
  return statsOfImages(extractor, `run-data:${dataset.id}`, datasetImages(dataset));
}
