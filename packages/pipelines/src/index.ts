// Matryoshka diffusion as a library: the pieces the apps (mdm-train, mdm-eval), the benchmarks
// and users' scripts compose. It never picks a backend: start one with @matryoshka-ts/backends.
export type { Conditioning, DiffusionInputs, DiffusionLevel, DiffusionModel, ParamLookup } from '@matryoshka-ts/core';

// The training step and its optimizer.
export { TrainStep } from './train-step.js';
export type { StepGradients, StepResult, TrainStepOptions } from './train-step.js';
export { Adam, clipByGlobalNorm, emaDecay, globalNorm, learningRate, updateEma } from './optim.js';
export type { LrDecay } from './optim.js';
export type { AdamOptions } from './optim.js';

// Runs: their config, presets, progressive phases, training loop, checkpoints and logs.
export {
  applyOverride,
  baseScheduleOf,
  isMultiStage,
  levelSchedulesOf,
  modelConfigOf,
  parseTrainConfig,
  runKindOf,
  trainConfigSchema,
  unetConfigOf,
} from './config.js';
export type { RunKind, TrainConfig, TrainConfigInput } from './config.js';
export { readConfigFile } from './config-file.js';
// What a training step would need (memory, the largest tensor), checked before any allocation.
export {
  COPIES_PER_PARAMETER,
  MAX_TENSOR_BYTES,
  MAX_TENSOR_ELEMENTS,
  checkTensorSizes,
  checkTrainingMemory,
  formatBytes,
  memoryPlan,
} from './memory-plan.js';
export type {
  MemoryCheckOptions,
  MemoryPlan,
  MemoryPlanConfig,
  PhaseMemory,
  SizeField,
  TensorCheckOptions,
  TensorSize,
} from './memory-plan.js';
// Multi-stage runs (cascaded, latent): their stages, driver, autoencoder stage and latent data.
export { LATENT_RUN, parseRunConfig, runStages } from './stages.js';
export type { AutoencoderStage, DiffusionStage, RunStage } from './stages.js';
export { trainRun } from './train-run.js';
export { RUN_MANIFEST, readRunManifest } from './run-manifest.js';
export { writeRunFile, writeRunFileAtomic } from './run-files.js';
export type { RunManifest } from './run-manifest.js';
export { readAutoencoderProgress, trainAutoencoderStage } from './train-autoencoder.js';
export type { AutoencoderProgress } from './train-autoencoder.js';
export {
  decodeLatents,
  fillLatentCacheShard,
  fillLatentCacheWithParts,
  latentCacheKey,
  measureScaleFactor,
  openLatentTrainingData,
  prepareLatentCache,
} from './latent-data.js';
// Filling a run's caches ahead of training, whole or one shard's part (`mdm-train cache`).
export { fillRunCaches, runCaptions } from './run-caches.js';
export type { FillRunCachesOptions } from './run-caches.js';
export type { CacheFillSummary } from './cache-summary.js';
export { TRAIN_PRESETS } from './train-presets.js';
export { levelName, levelsOf, nestDeeper, phaseBounds, phaseLevel, phaseModelConfig } from './phases.js';
export { TrainingDivergedError, lossOptionsOf, train } from './train.js';
export { requireBackend } from './require-backend.js';
export type { TrainOptions, TrainResult } from './train.js';
export type { StepMetrics } from './run-log.js';
export {
  listSnapshots,
  loadCheckpoint,
  nonFiniteTensors,
  readCheckpointInfo,
  saveCheckpoint,
  snapshotPath,
} from './run-checkpoint.js';
export type { LoadSelection, LoadedCheckpoint, TrainProgress, TrainTensors } from './run-checkpoint.js';

// Conditioning and data.
export { concatConditioning, conditionBatch, nullCondition } from './conditioning.js';
export type { Conditioner } from './conditioning.js';
export {
  defaultTextCacheDir,
  fillTextFeatureCache,
  frozenEncoderOf,
  openConditioner,
  sortedCaptions,
} from './frozen-encoder.js';
export { openSource, openTrainingData, previewConditions } from './data-source.js';
export type { Preview, SourceSpec, TrainingData } from './data-source.js';
export { dataCheck } from './data-check.js';
export type { DataCheckOptions, DataCheckResult } from './data-check.js';

// Loading a run and generating from it.
export { openRun, runBackend, runCheckpointPath } from './open-run.js';
export { weightsFromRun } from './init-from.js';
export { checkProgress, prepareFreshRunFolder } from './run-folder.js';
export type { InitialWeights } from './init-from.js';
export type { OpenRun, OpenRunOptions, RunGenerateOptions } from './open-run.js';
export { generate } from './generate.js';
// Exported runs for a web page (`mdm-train export --web`); `@matryoshka-ts/pipelines/browser` holds what the page runs.
export {
  WEB_RUN_FILE,
  openWebRun,
  parseWebRunManifest,
  webExportProblem,
  webRunManifestSchema,
} from './web-run.js';
export type { WebRun, WebRunFiles, WebRunManifest } from './web-run.js';
export type { GenerateOptions, LevelSamples } from './generate.js';
export { sampleGridPng } from './grid.js';
export { clipGif, contactSheetPng, writeVideoSamples } from './video-output.js';

// Progress output and plots for long work.
export { ProgressLine, Throughput, formatDuration } from './progress.js';
export { type Shard, parseShard, shardLabel, shardOf, shardRange } from './shard.js';
export { lineChartSvg, smooth } from './plot.js';
export type { Series } from './plot.js';
export { reportError } from './cli-errors.js';
export { BUCKET_BYTES, DataParallel, batchPartRngs } from './data-parallel.js';
