// The trainer as a library: what `mdm-eval` (and users' scripts) need to sample from a run.
export { openRun } from './run-model.js';
export type { OpenRun } from './run-model.js';
export { generate } from './generate.js';
export type { GenerateOptions } from './generate.js';
export { listSnapshots, snapshotPath } from './train-state.js';
export { previewConditions } from './train.js';
export type { Conditioner } from './conditioning.js';
export type { TrainConfig } from './config.js';
export { ProgressLine, Throughput, formatDuration } from './progress.js';
export { lineChartSvg, smooth } from './plot.js';
export type { Series } from './plot.js';
export { train } from './train.js';
export type { StepMetrics, TrainOptions, TrainResult } from './train.js';
export { parseTrainConfig } from './config.js';
export type { TrainConfigInput } from './config.js';
export { TRAIN_PRESETS } from './train-presets.js';
