import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKEND_NAMES, initBackend } from '@matryoshka-ts/backends';
import { type BackendName, ConfigError } from '@matryoshka-ts/core';
import { type NestedUNetConfig, PRESET_NAMES, preset as modelPreset, resolveConfig } from '@matryoshka-ts/nested-unet';
import {
  type CacheFillSummary,
  type Shard,
  TRAIN_PRESETS,
  type TrainConfig,
  type TrainConfigInput,
  applyOverride,
  fillRunCaches,
  parseRunConfig,
  parseShard,
  readConfigFile,
  shardLabel,
} from '@matryoshka-ts/pipelines';

/** `mdm-train cache`'s options: the run-config options of `train`, and `--shard`. */
export interface CacheCommandOptions {
  preset?: string;
  config?: string;
  set?: string[];
  out?: string;
  seed?: number;
  backend?: BackendName;
  shard?: Shard;
}

/** The JSON line `mdm-train cache` prints. */
export interface CacheCommandResult {
  /** The shard filled (`i/n`), or null: the whole caches, parts merged. */
  shard: string | null;
  out: string;
  caches: CacheFillSummary[];
  seconds: number;
}

/** A model's top level as a phase names it (as `train` does for a model preset alone). */
function topOf(config: NestedUNetConfig): { resolution: number; frames: number } {
  const top = resolveConfig(config).levels[0];
  return { resolution: top.resolution, frames: top.frames };
}

/**
 * The config `mdm-train train` would run with the same --preset / --config / --set / --seed /
 * --backend, and its run directory. Kept in step with the `train` command's (cli.ts): the caches
 * filled here are only found by a run whose config names the same data, autoencoder and encoder.
 */
export function cacheRunConfig(options: CacheCommandOptions): { config: TrainConfig; out: string } {
  const name = options.preset ?? (options.config ? undefined : 'emoji');
  let raw: Record<string, unknown> = {};
  if (name) {
    if (TRAIN_PRESETS[name]) raw = structuredClone(TRAIN_PRESETS[name]) as Record<string, unknown>;
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
  if (options.backend) raw.backend = options.backend;
  return { config: parseRunConfig(raw as TrainConfigInput), out: options.out ?? join('runs', name ?? 'custom') };
}

/**
 * Fills the caches a run fills before training (a latent run's latents, a frozen ONNX encoder's
 * text features), whole or, with `--shard i/n`, shard i's part of each: n workers (a Slurm job
 * array) encode n disjoint ranges at once, each into its own part file, and a later call without
 * `--shard` (or training itself) merges the parts into the caches, byte for byte what one process
 * writes. Progress goes to stderr; the result is returned for the one JSON line on stdout.
 */
export async function runCacheCommand(options: CacheCommandOptions): Promise<CacheCommandResult> {
  const started = performance.now();
  const { config, out } = cacheRunConfig(options);
  // The autoencoder encodes on the run's backend; the text encoder runs in ONNX Runtime.
  await initBackend({ backend: config.backend });
  const caches = await fillRunCaches(config, out, {
    shard: options.shard,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  return {
    shard: options.shard ? shardLabel(options.shard) : null,
    out,
    caches,
    seconds: (performance.now() - started) / 1000,
  };
}

const collect = (v: string, all: string[]) => [...all, v];

/** The `cache` command, for `program.addCommand` in cli.ts. */
export function cacheCommand(): Command {
  return new Command('cache')
    .description(
      "Fill the caches a run fills before training (a latent run's latents, a frozen ONNX text encoder's " +
        'features) without training, and print one JSON line {"shard", "caches": [{"cache", "encoded", ' +
        '"present", …}], "seconds"}. With --shard i/n only shard i\'s part (n workers cover everything once); ' +
        'without it, the parts are merged and the rest encoded. Training merges parts too.',
    )
    .option(
      '--preset <name>',
      `a training preset (${Object.keys(TRAIN_PRESETS).join(', ')}) or a model preset (${PRESET_NAMES.join(', ')})`,
    )
    .option('--config <file>', 'a training config (.json, .yaml); merged over the preset')
    .option('--set <key=value>', 'override one config field, as for train (repeatable)', collect, [])
    .option('--out <dir>', "the run's directory (default runs/<preset>): a latent run's cache lives in it")
    .option('--seed <n>', 'the run seed, as for train', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n)) throw new InvalidArgumentError(`not an integer: ${v}`);
      return n;
    })
    .option(
      '--shard <i/n>',
      "fill only shard i of n's part of each cache (a job array's task id: n shards add up to one)",
      (v: string) => {
        try {
          return parseShard(v);
        } catch (error) {
          throw new InvalidArgumentError((error as Error).message);
        }
      },
    )
    .addOption(new Option('--backend <name>', 'compute backend (the autoencoder encodes on it)').choices(BACKEND_NAMES))
    .action(async (options: CacheCommandOptions) => {
      console.log(JSON.stringify(await runCacheCommand(options)));
    });
}
