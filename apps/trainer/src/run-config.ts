import { InvalidArgumentError } from 'commander';
import { type BackendName, ConfigError } from '@matryoshka-ts/core';
import { type NestedUNetConfig, PRESET_NAMES, preset as modelPreset, resolveConfig } from '@matryoshka-ts/nested-unet';
import {
  type Shard,
  TRAIN_PRESETS,
  type TrainConfig,
  type TrainConfigInput,
  applyOverride,
  parseRunConfig,
  parseShard,
  readConfigFile,
} from '@matryoshka-ts/pipelines';

/** The options that say which run a command means: `train`'s, shared by `cache`. */
export interface RunConfigOptions {
  preset?: string;
  config?: string;
  set?: string[];
  seed?: number;
  initFrom?: string;
  backend?: BackendName;
}

/**
 * The config a fresh run uses, from --preset (default `emoji`), --config (merged over it), --set,
 * --seed, --init-from and --backend; `name` is the preset's (for the default run directory). One
 * definition, so that `cache` fills exactly the caches `train` looks for.
 */
export function freshRunConfig(options: RunConfigOptions): { name: string | undefined; config: TrainConfig } {
  const name = options.preset ?? (options.config ? undefined : 'emoji');
  let raw: Record<string, unknown> = {};
  if (name) {
    if (TRAIN_PRESETS[name]) raw = structuredClone(TRAIN_PRESETS[name]) as Record<string, unknown>;
    // A model preset alone: one phase training all its levels.
    else if ((PRESET_NAMES as readonly string[]).includes(name))
      raw = { model: name, phases: [{ ...topOf(modelPreset(name)), batchSize: 8, steps: 1000 }] };
    else
      throw new ConfigError(
        `unknown preset '${name}': training presets ${Object.keys(TRAIN_PRESETS).join(', ')}; ` +
          `model presets ${PRESET_NAMES.join(', ')}`,
      );
  }
  if (options.config) raw = { ...raw, ...readConfigFile(options.config) };
  for (const s of options.set ?? []) applyOverride(raw, s);
  if (options.seed !== undefined) raw.seed = options.seed;
  if (options.initFrom) raw.initFrom = options.initFrom;
  if (options.backend) raw.backend = options.backend;
  return { name, config: parseRunConfig(raw as TrainConfigInput) };
}

/** A model's top level as a phase names it: its resolution and frames. */
function topOf(config: NestedUNetConfig): { resolution: number; frames: number } {
  const top = resolveConfig(config).levels[0];
  return { resolution: top.resolution, frames: top.frames };
}

/** commander's parser of `--shard i/n`: a bad value is a usage error naming the option. */
export function shardArgument(value: string): Shard {
  try {
    return parseShard(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}
