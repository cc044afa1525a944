import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKEND_NAMES, initBackend } from '@matryoshka-ts/backends';
import type { BackendName } from '@matryoshka-ts/core';
import { PRESET_NAMES } from '@matryoshka-ts/nested-unet';
import {
  type CacheFillSummary,
  type Shard,
  TRAIN_PRESETS,
  type TrainConfig,
  fillRunCaches,
  shardLabel,
} from '@matryoshka-ts/pipelines';
import { freshRunConfig, shardArgument } from './run-config.js';

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

/** The config `mdm-train train` would run with the same options, and its run directory. */
export function cacheRunConfig(options: CacheCommandOptions): { config: TrainConfig; out: string } {
  const { name, config } = freshRunConfig(options);
  return { config, out: options.out ?? join('runs', name ?? 'custom') };
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
      shardArgument,
    )
    .addOption(new Option('--backend <name>', 'compute backend (the autoencoder encodes on it)').choices(BACKEND_NAMES))
    .action(async (options: CacheCommandOptions) => {
      console.log(JSON.stringify(await runCacheCommand(options)));
    });
}
