import { readFileSync } from 'node:fs';
import { type NestedUNetConfig, type PresetConditioning, countParams, preset } from '@matryoshka-ts/nested-unet';

export interface InfoOptions {
  preset?: string;
  config?: string;
  conditioning?: 'text' | 'labels' | 'none';
}

export interface ModelInfo {
  preset: string;
  levels: Array<{ resolution: number; params: number }>;
  total: number;
}

/** Parameter counts of a preset or a model config file, per level (each excluding the levels inside it). */
export function modelInfo(options: InfoOptions): ModelInfo {
  if (!options.preset === !options.config) throw new Error('info: give exactly one of --preset <name> or --config <file.json>');
  let config: NestedUNetConfig;
  if (options.preset) {
    const conditioning: PresetConditioning | undefined = options.conditioning ? { kind: options.conditioning } : undefined;
    config = preset(options.preset, { conditioning });
  } else {
    const raw = JSON.parse(readFileSync(options.config!, 'utf8')) as { model?: NestedUNetConfig } & NestedUNetConfig;
    config = raw.model ?? raw;
  }
  const counts = countParams(config);
  return { preset: options.preset ?? options.config!, levels: counts.levels, total: counts.total };
}
