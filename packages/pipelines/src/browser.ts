// `@matryoshka-ts/pipelines/browser`: the part of the library a web page runs, importing no Node
// module: run configs (parse, model, schedules, phases), conditioning, `generate`, and exported
// web runs (`mdm-train export --web`). Training, checkpoints on disk and data are the main entry.
export type { Conditioning, DiffusionInputs, DiffusionLevel, DiffusionModel, ParamLookup } from '@matryoshka-ts/core';
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
export { levelName, levelsOf, phaseLevel, phaseModelConfig } from './phases.js';
export { concatConditioning, conditionBatch, nullCondition } from './conditioning.js';
export type { Conditioner } from './conditioning.js';
export { generate, levelSamplesTensor } from './generate.js';
export type { GenerateOptions, LevelSamples } from './generate.js';
export {
  WEB_RUN_FILE,
  openWebRun,
  parseWebRunManifest,
  webExportProblem,
  webRunManifestSchema,
} from './web-run.js';
export type { WebRun, WebRunFiles, WebRunManifest } from './web-run.js';
