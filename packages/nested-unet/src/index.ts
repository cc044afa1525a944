export { ConfigError, nestedUNetConfigSchema, resolveConfig } from './config.js';
export type {
  LabelConditioningConfig,
  LevelKind,
  NestedUNetConfig,
  ResolvedConfig,
  ResolvedLevel,
  TextConditioningConfig,
  UNetLevelConfig,
} from './config.js';
export { NestedUNet, countParams, nestedUNetForward, nestedUNetSpecs } from './nested-unet.js';
export { initialValue } from '@matryoshka-ts/layers';
export type { ForwardOptions, NestedUNetInputs, NestedUNetOptions } from './nested-unet.js';
export type { ConditioningInput, DebugSink } from './conditioning.js';
export { paramsFrom } from '@matryoshka-ts/layers';
export type { Params } from '@matryoshka-ts/layers';
export { sinusoid, timeFrequencies } from './time-embedding.js';
export { fromMlMdmConfig } from './ml-mdm-config.js';
export type { MlMdmUNetConfig } from './ml-mdm-config.js';
export { PRESET_NAMES, preset, presetShifts } from './presets.js';
export type { PresetConditioning, PresetOptions } from './presets.js';
