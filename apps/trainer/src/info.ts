import { ConfigError } from '@matryoshka-ts/core';
import { type NestedUNetConfig, type PresetConditioning, countParams, preset } from '@matryoshka-ts/nested-unet';
import { readConfigFile } from '@matryoshka-ts/pipelines';

export interface InfoOptions {
  preset?: string;
  config?: string;
  conditioning?: 'text' | 'labels' | 'none';
}

export interface ModelInfo {
  preset: string;
  /** Per level, outermost first: its frame size, frames (1 for images), kind and own parameters. */
  levels: Array<{ resolution: number; frames: number; kind: string; params: number }>;
  total: number;
}

/** Parameter counts of a preset or a model config file, per level (each excluding the levels inside it). */
export function modelInfo(options: InfoOptions): ModelInfo {
  if (!options.preset === !options.config)
    throw new ConfigError('info: give exactly one of --preset <name> or --config <file.json>');
  let config: NestedUNetConfig;
  if (options.preset) {
    const conditioning: PresetConditioning | undefined = options.conditioning
      ? { kind: options.conditioning }
      : undefined;
    config = preset(options.preset, { conditioning });
  } else {
    const raw = readConfigFile(options.config!) as unknown as { model?: NestedUNetConfig } & NestedUNetConfig;
    config = raw.model ?? raw;
  }
  const counts = countParams(config);
  return { preset: options.preset ?? options.config!, levels: counts.levels, total: counts.total };
}
