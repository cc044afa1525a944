import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKEND_NAMES, initBackend, initDistributed } from '@matryoshka-ts/backends';
import { type Communicator, ConfigError, SINGLE_PROCESS } from '@matryoshka-ts/core';
import { PRESET_NAMES } from '@matryoshka-ts/nested-unet';
import {
  TRAIN_PRESETS,
  type TrainConfig,
  dataCheck,
  readCheckpointInfo,
  parseRunConfig,
  readConfigFile,
  prepareFreshRunFolder,
  readRunManifest,
  reportError,
  trainRun,
} from '@matryoshka-ts/pipelines';
import { cacheCommand } from './cache-command.js';
import { exportWebCommand } from './export-command.js';
import { modelInfo } from './info.js';
import { sampleCommand } from './sample-command.js';
import { freshRunConfig, shardArgument } from './run-config.js';

/** The job this process is a rank of (mpirun, srun), once `train` has opened it. */
let job: Communicator = SINGLE_PROCESS;

const program = new Command();
program.name('mdm-train').description('Train, resume and sample Matryoshka Diffusion Models.').showHelpAfterError();

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`not an integer: ${v}`);
  return n;
};
/** A count that must be at least 1 (`--n`, `--steps`): 0 or a negative number is refused, naming the option. */
const positive = (option: string) => (v: string) => {
  const n = int(v);
  if (n < 1) throw new InvalidArgumentError(`${option} must be at least 1, got ${v}`);
  return n;
};
/** A number ≥ 0 (`--guidance`, `--eta`). */
const nonNegative = (option: string) => (v: string) => {
  const x = Number(v);
  if (!(Number.isFinite(x) && x >= 0)) throw new InvalidArgumentError(`${option} must be a number ≥ 0, got ${v}`);
  return x;
};
const collect = (v: string, all: string[]) => [...all, v];

program
  .command('info')
  .description(
    "Print a model's parameter counts as one JSON line (per level, each excluding the levels inside it). " +
      'Allocates no weights.',
  )
  .option('--preset <name>', `a preset: ${PRESET_NAMES.join(', ')}`)
  .option('--config <file>', 'a model config (JSON) instead of a preset')
  .addOption(new Option('--conditioning <kind>', 'conditioning of a preset').choices(['text', 'labels', 'none']))
  .action((options) => {
    console.log(JSON.stringify(modelInfo(options)));
  });

program
  .command('train')
  .description('Train a model (default: the `emoji` preset on the bundled data) into a run directory.')
  .option(
    '--preset <name>',
    `a training preset (${Object.keys(TRAIN_PRESETS).join(', ')}) or a model preset (${PRESET_NAMES.join(', ')})`,
  )
  .option('--config <file>', 'a training config (.json, .yaml); merged over the preset')
  .option(
    '--set <key=value>',
    'override one config field, e.g. optimizer.lr=2e-4 or phases.0.steps=100 (repeatable)',
    collect,
    [],
  )
  .option(
    '--steps <n>',
    "the run's total steps (default: the sum of the phases'; a multi-stage run: each stage's)",
    positive('--steps'),
  )
  .option('--out <dir>', 'run directory (default runs/<preset>)')
  .option('--seed <n>', 'seed for weights, noise and data order', int)
  .option('--resume <dir>', 'continue the run in <dir> from its checkpoint (its config is used)')
  .option('--force', 'start a fresh run in an --out that already holds one (the old run is moved aside, not deleted)')
  .option(
    '--init-from <run>',
    "start the model's inner levels from a trained run's weights and EMA (e.g. an image run inside a video model)",
  )
  .addOption(new Option('--backend <name>', 'compute backend').choices(BACKEND_NAMES))
  .action(async (options) => {
    // Started by mpirun or srun: one rank of a data-parallel run (README: "Many processes").
    job = await initDistributed();
    const writer = job.rank === 0;
    // The config a fresh run would use, from --preset / --config / --set / --seed / --backend.
    const fresh = () => freshRunConfig(options);
    let config: TrainConfig;
    let out: string;
    if (options.resume) {
      out = options.resume;
      if (options.out && resolve(options.out) !== resolve(out))
        throw new ConfigError(
          `--out ${options.out} differs from --resume ${out}: a resumed run continues in its own directory`,
        );
      // A multi-stage run keeps its config next to run.json; a single run in its checkpoint.
      config = readRunManifest(out)
        ? (readConfigFile(join(out, 'config.json')) as TrainConfig)
        : readCheckpointInfo(join(out, 'checkpoint.safetensors')).config;
      // Scripts may repeat the original flags; they must describe the same run.
      if (options.preset || options.config || options.set.length || options.seed !== undefined || options.initFrom) {
        const { backend: _a, ...wanted } = fresh().config;
        const { backend: _b, ...saved } = parseRunConfig(config);
        if (JSON.stringify(wanted) !== JSON.stringify(saved))
          throw new ConfigError(
            `the run in ${out} was trained with another config; ` +
              'resume it with --resume alone (its config.json is used)',
          );
      }
      if (options.backend) config = { ...config, backend: options.backend };
    } else {
      const { name, config: c } = fresh();
      config = c;
      out = options.out ?? join('runs', name ?? 'custom');
    }
    const parsed = parseRunConfig(config);
    // A used folder is refused (or, with --force, moved aside) before any work starts; by rank 0.
    if (!options.resume && writer) {
      const aside = prepareFreshRunFolder(out, Boolean(options.force));
      if (aside) console.error(`${out} held a run: moved to ${aside}`);
    }
    job.barrier();
    await initBackend({ backend: parsed.backend, quiet: !writer });
    const result = await trainRun(parsed, {
      out,
      resume: Boolean(options.resume),
      force: Boolean(options.force),
      steps: options.steps,
      communicator: job,
    });
    job.finalize();
    if (!writer) return;
    console.log(`run: ${out}`);
    const manifest = readRunManifest(out);
    // A multi-stage run logs each stage in its own directory.
    for (const stage of manifest?.stages ?? [{ name: '', dir: '' }]) {
      const at = join(out, stage.dir);
      console.log(
        `${stage.name ? `${stage.name}: ` : ''}metrics: ${join(at, 'metrics.jsonl')}` +
          `${existsSync(join(at, 'loss.svg')) ? `, loss curve: ${join(at, 'loss.svg')}` : ''}`,
      );
    }
    if (result.samples) console.log(`samples: ${result.samples}`);
  });

program
  .command('sample')
  .description(
    "Generate images at every level from a run's checkpoint (EMA weights by default) as one PNG grid; " +
      'for a video run a contact sheet, a GIF per sample and, where ffmpeg is installed, an MP4 each.',
  )
  .requiredOption('--run <dir>', 'run directory')
  .option('--prompt <text>', 'caption for every image (text-conditioned runs)')
  .option('--label <n>', 'class label for every image (class-conditioned runs)', int)
  .option('--n <n>', 'number of images', positive('--n'), 16)
  .option('--steps <n>', 'sampling steps', positive('--steps'), 250)
  .addOption(new Option('--sampler <kind>', 'update rule').choices(['ddpm', 'ddim']).default('ddpm'))
  .option('--eta <x>', 'DDIM η', nonNegative('--eta'), 0)
  .option('--guidance <w>', 'classifier-free guidance weight (default: the run config)', nonNegative('--guidance'))
  .addOption(
    new Option('--threshold <kind>', 'x̂0 thresholding (default: the run config)').choices([
      'none',
      'clip',
      'dynamic',
      'dynamic-deepfloyd',
    ]),
  )
  .option('--seed <n>', 'seed of the starting noise', int, 0)
  .option('--no-ema', 'use the raw weights instead of the EMA')
  .option('--allow-nonfinite', 'sample even if weights hold NaN or Inf (refused by default, naming the tensors)')
  .option('--out <file>', 'PNG path (default <run>/sample.png)')
  .addOption(new Option('--backend <name>', 'compute backend').choices(BACKEND_NAMES))
  .action(async (options) => {
    const path = await sampleCommand(options);
    console.log(`samples: ${path}`);
  });

program
  .command('export')
  .description(
    'Write what a web page needs to sample a run (apps/web) into a folder: config.json (the resolved config), ' +
      'weights.safetensors (the weights `sample` uses: EMA by default) and web-run.json (levels, text encoder, ' +
      'sampling defaults). A single model (mdm or simple run) with the hashed-word encoder, labels or none.',
  )
  .requiredOption('--run <dir>', 'run directory (or one checkpoint or snapshot file)')
  .requiredOption('--web <dir>', 'folder to write the web run into (created if missing)')
  .option('--no-ema', 'export the raw weights instead of the EMA')
  .option('--allow-nonfinite', 'export even if weights hold NaN or Inf (refused by default, naming the tensors)')
  .action(async (options) => {
    const files = await exportWebCommand(options);
    console.log(`web run: ${options.web} (${files.map((f) => f.split('/').pop()).join(', ')})`);
  });

program
  .command('data-check')
  .description(
    'Read a whole data set once through the data pipeline (every sample read and decoded in worker threads), ' +
      'without training, and print one JSON line {"read", "skipped": {reason: count}, "images_per_s"} ' +
      '— to validate a data set before a long run.',
  )
  .addOption(
    new Option('--source <kind>', 'the data set format')
      .choices(['imagenet', 'cc12m', 'webvid', 'bundled'])
      .makeOptionMandatory(),
  )
  .option(
    '--path <dir|pattern>',
    'imagenet: folder of synset folders or tars; cc12m: folder, glob or {00000..00099} pattern of .tar shards ' +
      '(or the index TSV with --format tsv); webvid: the CSV',
  )
  .addOption(
    new Option('--format <kind>', 'cc12m: img2dataset webdataset shards or the official TSV index').choices([
      'webdataset',
      'tsv',
    ]),
  )
  .option('--synsets <file>', 'imagenet: wnid list fixing the label order')
  .option('--class-names <file>', 'imagenet: class names for captions')
  .option('--videos <dir>', 'webvid: the folder of downloaded videos')
  .option('--size <px>', 'decode size', int, 64)
  .option('--limit <n>', 'stop after this many samples', int)
  .option('--workers <n>', 'decode worker threads (default min(4, cores − 1))', int)
  .option(
    '--shard <i/n>',
    "check only shard i of n of the source's files (a job array's task id: n checks add up to one)",
    shardArgument,
  )
  .action(async (options) => {
    const result = await dataCheck({ ...options, classNames: options.classNames });
    console.log(JSON.stringify(result));
  });

// `mdm-train cache [--shard i/n]`: the caches a run fills before training, whole or one shard's part.
program.addCommand(cacheCommand());

program.parseAsync(process.argv).catch((error: unknown) => {
  if (job.world === 1) process.exit(reportError('mdm-train', error));
  // One rank failing stops the job (MPI_Abort: the launcher stops the other ranks, which would
  // otherwise wait for this one), after saying which rank and why.
  job.abort(reportError(`mdm-train (rank ${job.rank} of ${job.world})`, error));
});
