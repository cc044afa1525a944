import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKEND_NAMES, type BackendName, initBackend } from '@matryoshka-ts/backends';
import { ConfigError } from '@matryoshka-ts/core';
import { ONNX_DEVICES, type OnnxDevice } from '@matryoshka-ts/metrics';
import { type Shard, parseShard, reportError, runBackend } from '@matryoshka-ts/pipelines';
import { DEFAULT_AUG_LEVELS, compareCommand } from './compare-command.js';
import { curvesCommand } from './curves-command.js';
import { frechetCommand } from './frechet-command.js';
import { fvdCommand } from './fvd-command.js';
import { generateCommand } from './generate-command.js';
import { clipCommand, fidCommand, mergeCommand, statsCommand } from './metric-commands.js';
import type { NetworkOptions } from './networks.js';
import { sweepCommand } from './sweep-command.js';

const program = new Command();
program
  .name('mdm-eval')
  .description(
    'Evaluate Matryoshka Diffusion Models: FID, CLIP score (per frame on video), FVD, guidance sweeps, ' +
      'metric-vs-step curves.',
  )
  .showHelpAfterError();

const log = (line: string) => process.stderr.write(`${line}\n`);
const print = (result: unknown) => console.log(JSON.stringify(result));
const number = (name: string) => (v: string) => {
  const x = Number(v);
  if (!Number.isFinite(x)) throw new InvalidArgumentError(`${name} must be a number, got '${v}'`);
  return x;
};
const integer = (name: string) => (v: string) => {
  const x = Number(v);
  if (!Number.isInteger(x) || x < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got '${v}'`);
  return x;
};

const shardOption = (v: string) => {
  try {
    return parseShard(v);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};

const SHARD_HELP =
  'statistics of shard i of n only (images k with k mod n = i), written as a part for `merge` ' +
  '(count, mean and centred scatter in float64)';

const FRAMES_HELP =
  'read the source as video clips (a folder of clip folders of frame PNG/JPEGs, or of GIFs) and measure every ' +
  'frame; automatic for a directory with clips/ (as `generate` writes video samples) or holding only GIFs';

/** `--device`: ONNX Runtime's execution provider for the ONNX networks a command runs. */
const deviceOption = (what: string) =>
  new Option(
    '--device <kind>',
    `where ONNX Runtime runs ${what}: cpu, cuda (CUDA 12 provider files) or webgpu ` +
      "(a GPU through ONNX Runtime's built-in Dawn: Vulkan on Linux)",
  )
    .choices([...ONNX_DEVICES])
    .default('cpu');

/** Options that choose the feature / CLIP networks, shared by the commands that need them. */
function networkOptions(cmd: Command, clip: boolean): Command {
  cmd
    .option(
      '--features <model>',
      "feature network: 'proxy' (trained on the bundled data, labelled as such), " +
        "an ONNX file (e.g. pytorch-fid's Inception), or a TF.js graph model directory",
      'proxy',
    )
    .addOption(
      new Option(
        '--resize <method>',
        'resize before features: pytorch-fid (torch bilinear) or clean-fid (PIL bicubic)',
      ).choices(['pytorch-fid', 'clean-fid']),
    )
    .option('--size <px>', 'network input size (default 299 for ONNX/TF.js, 64 for the proxy)', integer('--size'))
    .addOption(
      new Option(
        '--range <range>',
        'value range the network takes (default by resize: pytorch-fid 0-1, clean-fid 0-255; TF.js -1-1)',
      ).choices(['0-1', '0-255', '-1-1']),
    )
    .option('--cache <dir>', 'where the proxy network is cached (default ~/.cache/matryoshka-ts/proxy)')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices([...BACKEND_NAMES]).default('auto'))
    .addOption(deviceOption('the ONNX networks (--features file.onnx, --clip directory)'));
  if (clip) {
    cmd
      .option(
        '--clip <model>',
        "CLIP model: 'proxy', 'none', or a directory with vision_model.onnx, text_model.onnx and tokenizer files",
        'proxy',
      )
      .addOption(
        new Option('--definition <name>', 'CLIP score: torchmetrics = 100·max(cos,0), clipscore = 2.5·max(cos,0)')
          .choices(['torchmetrics', 'clipscore'])
          .default('torchmetrics'),
      );
  }
  return cmd;
}

type Opts = NetworkOptions & { backend: BackendName; cache?: string } & Record<string, unknown>;
const networks = (o: Opts): NetworkOptions => ({
  features: o.features,
  clip: o.clip,
  resize: o.resize,
  size: o.size,
  range: o.range,
  cacheDir: o.cache,
  device: o.device,
  log,
});

program
  .command('frechet')
  .description(
    'Print the Fréchet distance (FID) between two feature-statistics files ' +
      '(.npz with mu (d,) and sigma (d, d), as pytorch-fid saves them) as one JSON line: {"fid", "a", "b", "dim"}.',
  )
  .argument('<a>', 'first statistics file (.npz)')
  .argument('<b>', 'second statistics file (.npz)')
  .addOption(
    new Option('--method <kind>', "factor of a's covariance used to symmetrise the product")
      .choices(['cholesky', 'eigh'])
      .default('cholesky'),
  )
  .action((a: string, b: string, options: { method: 'cholesky' | 'eigh' }) =>
    print(frechetCommand(a, b, { method: options.method })),
  );

networkOptions(
  program
    .command('stats')
    .description(
      'Feature statistics of a set of images as pytorch-fid .npz (mu, sigma) ' +
        'plus a .npz.json sidecar naming the features, N and the resize.',
    )
    .requiredOption(
      '--images <source>',
      'a directory of PNG/JPEG images, .tar shards (a glob or {00000..00009} pattern), ' +
        "or 'bundled' (the default run's data)",
    )
    .requiredOption('--out <file.npz>', 'statistics file to write')
    .option('--frames', FRAMES_HELP)
    .option('--shard <i/n>', SHARD_HELP, shardOption),
  false,
).action(async (o: Opts & { images: string; out: string; frames?: boolean; shard?: Shard }) => {
  await initBackend({ backend: o.backend });
  print(await statsCommand({ ...networks(o), images: o.images, out: o.out, frames: o.frames, shard: o.shard }));
});

program
  .command('merge')
  .description(
    'Merge the parts of a sharded stats job (stats --shard i/n, for every i) into one statistics file, ' +
      'equal to what one process writes; prints one JSON line.',
  )
  .argument('<parts...>', 'the part files (.npz, each with its .npz.json sidecar)')
  .requiredOption('--out <file.npz>', 'statistics file to write')
  .action((parts: string[], o: { out: string }) => print(mergeCommand(parts, o.out)));

networkOptions(
  program
    .command('fid')
    .description(
      'FID of samples against a reference; prints one JSON line with the FID, N, the reference, ' +
        'the feature network and the resize.',
    )
    .requiredOption('--samples <source>', 'directory (or .tar shards) of sample images, or video samples (per frame)')
    .requiredOption(
      '--reference <source>',
      "statistics (.npz), a directory / shards of real images or frames, clips (per frame), or 'bundled'",
    )
    .option('--frames', FRAMES_HELP),
  false,
).action(async (o: Opts & { samples: string; reference: string; frames?: boolean }) => {
  await initBackend({ backend: o.backend });
  print(await fidCommand({ ...networks(o), samples: o.samples, reference: o.reference, frames: o.frames }));
});

networkOptions(
  program
    .command('clip')
    .description(
      'CLIP score of samples against their captions (line i of the captions file ↔ image i in name order); ' +
        "video samples are scored per frame against their clip's caption, averaged per clip, then over clips.",
    )
    .requiredOption('--samples <dir>', 'directory of sample images or clips')
    .option('--captions <file>', 'captions, one per line (default <samples>/captions.txt, as `generate` writes it)')
    .option('--frames', FRAMES_HELP),
  true,
).action(
  async (
    o: Opts & { samples: string; captions?: string; definition: 'torchmetrics' | 'clipscore'; frames?: boolean },
  ) => {
    await initBackend({ backend: o.backend });
    print(
      await clipCommand({
        ...networks(o),
        samples: o.samples,
        captions: o.captions,
        definition: o.definition,
        frames: o.frames,
      }),
    );
  },
);

program
  .command('fvd')
  .description(
    'FVD of sample clips against reference clips: the Fréchet distance over features of an I3D network ' +
      'you supply as ONNX (docs/evaluation.md, "Video", says how to export one; nothing is downloaded). ' +
      'Prints one JSON line.',
  )
  .requiredOption(
    '--samples <dir>',
    'sample clips: a `generate` video samples directory, a folder of clip folders (frame PNG/JPEGs) or of GIFs',
  )
  .requiredOption('--reference <dir>', 'reference clips, in the same forms (e.g. real clips)')
  .option('--i3d <model.onnx>', 'I3D network as ONNX: input [N, 3, T, size, size] in [−1, 1], output features')
  .option('--i3d-size <px>', 'frame size the network takes', integer('--i3d-size'), 224)
  .option('--batch <clips>', 'clips per network batch', integer('--batch'), 8)
  .addOption(deviceOption('the I3D network'))
  .action(
    async (o: {
      samples: string;
      reference: string;
      i3d?: string;
      i3dSize: number;
      batch: number;
      device: OnnxDevice;
    }) => print(await fvdCommand(o)),
  );

program
  .command('generate')
  .description(
    'Write N samples of a run (or one checkpoint / snapshot) as PNGs with their captions and settings ' +
      '(a video level: clips/<id>/frame-000.png … and clips/<id>.gif); ' +
      'resumable: re-running continues where it stopped.',
  )
  .requiredOption('--run <path>', 'training run directory, or a checkpoint / snapshot file')
  .requiredOption('--out <dir>', 'samples directory')
  .requiredOption('--n <count>', 'number of samples', integer('--n'))
  .option(
    '--prompts <file>',
    "captions, one per line, cycled (default: the run's own captions, spread evenly over its data set)",
  )
  .option('--labels <list>', "class labels: comma list or 'all' (class-conditioned runs)")
  .option('--guidance <w>', "guidance weight (default: the run's sampling.guidance)", number('--guidance'))
  .option('--steps <k>', "sampling steps (default: the run's)", integer('--steps'))
  .addOption(new Option('--sampler <kind>', 'sampler').choices(['ddpm', 'ddim']))
  .addOption(
    new Option('--threshold <kind>', 'x̂0 thresholding').choices(['none', 'clip', 'dynamic', 'dynamic-deepfloyd']),
  )
  .option('--resolution <px>', "which level's images to write (default the outermost)", integer('--resolution'))
  .option('--batch <size>', 'images per sampling batch', integer('--batch'), 8)
  .option('--seed <n>', 'seed', number('--seed'), 0)
  .option(
    '--shard <i/n>',
    'write only shard i of n: a fixed range of batches (same seeds and names as one process), ' +
      'so n workers writing into one --out make the same samples',
    shardOption,
  )
  .option('--aug-level <L>', "cascaded runs: the low-resolution input's augmentation level", integer('--aug-level'))
  .option('--fps <n>', "video levels: frame rate of each clip's GIF", number('--fps'))
  .option('--allow-nonfinite', 'generate even if weights hold NaN or Inf (refused by default, naming the tensors)')
  .addOption(new Option('--backend <name>', 'tfjs backend (default: the run config)').choices([...BACKEND_NAMES]))
  .action(async (o) => {
    await initBackend({ backend: o.backend ?? runBackend(o.run) });
    const result = await generateCommand(o);
    print({ out: result.dir, generated: result.generated, ...result.manifest });
  });

networkOptions(
  program
    .command('sweep')
    .description(
      "Samples at several guidance weights, their FID against the run's training images and CLIP score: " +
        'sweep.md table, sweep.json and a FID–CLIP plot (sweep.svg).',
    )
    .requiredOption('--run <path>', 'training run directory (or checkpoint file)')
    .option('--guidance <list>', 'guidance weights', '1,1.5,2,3,5,7')
    .option('--n <count>', 'samples per weight', integer('--n'), 64)
    .option('--steps <k>', "sampling steps (default: the run's)", integer('--steps'))
    .option('--batch <size>', 'images per sampling batch', integer('--batch'), 8)
    .option('--seed <n>', 'seed', number('--seed'), 0)
    .option('--reference <source>', "reference (.npz, images, 'bundled'); default the run's training images")
    .option('--out <dir>', 'output directory (default <run>/eval/sweep)'),
  true,
).action(
  async (
    o: Opts & {
      run: string;
      guidance: string;
      n: number;
      steps?: number;
      batch: number;
      seed: number;
      reference?: string;
      out?: string;
      definition: 'torchmetrics' | 'clipscore';
    },
  ) => {
    await initBackend({ backend: o.backend });
    const guidance = o.guidance.split(',').map((w) => {
      if (!Number.isFinite(Number(w))) throw new ConfigError(`--guidance must be numbers, got '${w}'`);
      return Number(w);
    });
    const result = await sweepCommand({
      ...networks(o),
      run: o.run,
      guidance,
      n: o.n,
      steps: o.steps,
      batch: o.batch,
      seed: o.seed,
      reference: o.reference,
      out: o.out,
      definition: o.definition,
      log,
    });
    log(`sweep: ${result.table}, ${result.plot}`);
    print(result);
  },
);

networkOptions(
  program
    .command('curves')
    .description(
      'FID (and CLIP score) vs training step for several runs, from their snapshots and final checkpoints ' +
        "(the paper's Fig. 4 form): curves.md, curves.json, curves-fid.svg, curves-clip.svg.",
    )
    .requiredOption('--runs <dirs...>', 'training run directories')
    .option('--n <count>', 'samples per checkpoint', integer('--n'), 32)
    .option('--steps <k>', "sampling steps (default: each run's)", integer('--steps'))
    .option('--guidance <w>', "guidance weight (default: each run's)", number('--guidance'))
    .option(
      '--resolution <px>',
      "resolution of the metric (default: each run's final); checkpoints without that level are skipped",
      integer('--resolution'),
    )
    .option('--batch <size>', 'images per sampling batch', integer('--batch'), 8)
    .option('--seed <n>', 'seed', number('--seed'), 0)
    .option('--reference <source>', "reference (.npz, images, 'bundled'); default each run's training images")
    .option('--out <dir>', 'output directory', 'runs/curves'),
  true,
).action(
  async (
    o: Opts & {
      runs: string[];
      n: number;
      steps?: number;
      guidance?: number;
      resolution?: number;
      batch: number;
      seed: number;
      reference?: string;
      out: string;
      definition: 'torchmetrics' | 'clipscore';
    },
  ) => {
    await initBackend({ backend: o.backend });
    const result = await curvesCommand({
      ...networks(o),
      runs: o.runs,
      n: o.n,
      steps: o.steps,
      guidance: o.guidance,
      resolution: o.resolution,
      batch: o.batch,
      seed: o.seed,
      reference: o.reference,
      out: o.out,
      definition: o.definition,
      log,
    });
    log(`curves: ${result.table}, ${result.plots.join(', ')}`);
    print(result);
  },
);

networkOptions(
  program
    .command('compare')
    .description(
      'Several runs of any kind (mdm, simple, cascaded, latent) side by side: N samples each at its top ' +
        "resolution with the same sampling options, FID against the run's training images, CLIP score, " +
        'sampling time per image, network evaluations per sample, parameters and training time. ' +
        'A cascaded run is sampled at each --aug-levels level and reports its best (lowest FID). ' +
        'Writes compare.json, compare.md and compare.svg (FID and CLIP vs training step and vs training ' +
        'wall time, one point per run: its final checkpoint; per-snapshot curves are `mdm-eval curves`).',
    )
    .requiredOption('--runs <dirs...>', 'training run directories')
    .requiredOption('--out <dir>', 'output directory (samples in <out>/<run name>/samples[-aug<L>]/)')
    .option('--n <count>', 'samples per run (per augmentation level for a cascade)', integer('--n'), 64)
    .option('--steps <k>', "sampling steps (default: each run's)", integer('--steps'))
    .option('--guidance <w>', "guidance weight (default: each run's)", number('--guidance'))
    .addOption(new Option('--sampler <kind>', "sampler (default: each run's)").choices(['ddpm', 'ddim']))
    .addOption(
      new Option('--threshold <kind>', "x̂0 thresholding (default: each run's)").choices([
        'none',
        'clip',
        'dynamic',
        'dynamic-deepfloyd',
      ]),
    )
    .option(
      '--aug-levels <list>',
      "cascaded runs: augmentation levels of the low-resolution input, each in 1…the run's schedule steps",
      DEFAULT_AUG_LEVELS.join(','),
    )
    .option('--batch <size>', 'images per sampling batch', integer('--batch'), 8)
    .option('--seed <n>', 'seed', number('--seed'), 0)
    .option('--reference <source>', "reference (.npz, images, 'bundled'); default each run's training images"),
  true,
).action(
  async (
    o: Opts & {
      runs: string[];
      out: string;
      n: number;
      steps?: number;
      guidance?: number;
      sampler?: 'ddpm' | 'ddim';
      threshold?: 'none' | 'clip' | 'dynamic' | 'dynamic-deepfloyd';
      augLevels: string;
      batch: number;
      seed: number;
      reference?: string;
      definition: 'torchmetrics' | 'clipscore';
    },
  ) => {
    await initBackend({ backend: o.backend });
    const augLevels = o.augLevels.split(',').map((l) => {
      if (!/^\s*\d+\s*$/.test(l)) throw new ConfigError(`--aug-levels must be integers, got '${l}'`);
      return Number(l);
    });
    const result = await compareCommand({
      ...networks(o),
      runs: o.runs,
      out: o.out,
      n: o.n,
      steps: o.steps,
      guidance: o.guidance,
      sampler: o.sampler,
      threshold: o.threshold,
      augLevels,
      batch: o.batch,
      seed: o.seed,
      reference: o.reference,
      definition: o.definition,
      log,
    });
    log(`compare: ${result.table}, ${result.plot}`);
    print(result);
  },
);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.exit(reportError('mdm-eval', error));
});
