export { ConfigError, nestedUNetConfigSchema, resolveConfig } from './config.js';
export type {
  LabelConditioningConfig,
  NestedUNetConfig,
  ResolvedConfig,
  ResolvedLevel,
  TextConditioningConfig,
  UNetLevelConfig,
} from './config.js';
export { NestedUNet, countParams, initialValue, nestedUNetForward, nestedUNetSpecs } from './nested-unet.js';
export type { ForwardOptions, NestedUNetInputs, NestedUNetOptions } from './nested-unet.js';
export type { ConditioningInput, DebugSink } from './conditioning.js';
export { paramsFrom } from './nn.js';
export type { Params } from './nn.js';
export { sinusoid, timeFrequencies } from './time-embedding.js';
export { fromMlMdmConfig } from './ml-mdm-config.js';
export type { MlMdmUNetConfig } from './ml-mdm-config.js';
export { PRESET_NAMES, preset, presetShifts } from './presets.js';
export type { PresetConditioning, PresetOptions } from './presets.js';
