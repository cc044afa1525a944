import { ConfigError } from '@matryoshka-ts/core';
import { type NestedUNetConfig, type UNetLevelConfig, resolveConfig } from '@matryoshka-ts/nested-unet';
import type { TrainConfig } from './config.js';

/** The levels of a nested config, outermost first. */
export function levelsOf(config: NestedUNetConfig): UNetLevelConfig[] {
  const out: UNetLevelConfig[] = [];
  for (let l: UNetLevelConfig | undefined = config; l; l = l.inner) out.push(l);
  return out;
}

/**
 * The model trained in a phase whose top resolution is level `from` of the full model: that
 * level and everything inside it, with the model-wide settings (text, labels, heads) kept.
 * Its parameter names are the full model's minus `from` × `inner_unet.`.
 */
export function phaseModelConfig(full: NestedUNetConfig, from: number): NestedUNetConfig {
  const level = levelsOf(full)[from];
  const { imageChannels, attentionHeads, text, labels } = full;
  const config: NestedUNetConfig = { ...level };
  if (imageChannels !== undefined) config.imageChannels = imageChannels;
  if (attentionHeads !== undefined) config.attentionHeads = attentionHeads;
  if (text) config.text = text;
  if (labels) config.labels = labels;
  return config;
}

/**
 * Where each phase starts and ends in global steps, for a run of `total` steps (the last phase absorbs
 * the difference).
 */
export function phaseBounds(config: TrainConfig, total: number): Array<{ start: number; end: number }> {
  const bounds: Array<{ start: number; end: number }> = [];
  let start = 0;
  config.phases.forEach((phase, i) => {
    const last = i === config.phases.length - 1;
    const end = last ? total : Math.min(start + phase.steps, total);
    bounds.push({ start, end });
    start = end;
  });
  return bounds;
}

/**
 * Renames weights of a smaller model for the model `added` levels larger: each key gains `inner_unet.`
 * per added level.
 */
export function nestDeeper(values: Map<string, Float32Array>, added: number): Map<string, Float32Array> {
  const prefix = 'inner_unet.'.repeat(added);
  return new Map([...values].map(([k, v]) => [prefix + k, v]));
}

/**
 * The level of the full model a phase trains up to: the level of its `resolution` (and `frames`,
 * needed where a clip level and an image level share a resolution, as a video model's 16×64 and
 * 64 px levels do). Errors name the phase's field and the levels there are.
 */
export function phaseLevel(full: NestedUNetConfig, phase: { resolution: number; frames?: number }, index = 0): number {
  const levels = resolveConfig(full).levels;
  const matches = levels.filter(
    (l) => l.resolution === phase.resolution && (phase.frames === undefined || l.frames === phase.frames),
  );
  const size = (resolution: number, frames = 1) => (frames > 1 ? `${frames}×${resolution}` : `${resolution}`);
  const named = levels.map((l) => size(l.resolution, l.frames)).join(', ');
  if (matches.length === 0) {
    throw new ConfigError(
      `config: phases.${index}.resolution: ${size(phase.resolution, phase.frames)} is not a level of the model ` +
        `(${named})`,
    );
  }
  if (matches.length > 1) {
    throw new ConfigError(
      `config: phases.${index}.frames: ${phase.resolution} px names ${matches.length} levels (${named}); ` +
        'give frames as well (e.g. frames: 16 for the clip level, 1 for the image level)',
    );
  }
  return matches[0].index;
}

/** A level as the paper writes it: `64 px`, or `16×64 px` for a clip of 16 frames. */
export function levelName(resolution: number, frames = 1): string {
  return frames > 1 ? `${frames}×${resolution} px` : `${resolution} px`;
}
