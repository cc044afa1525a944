import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ConfigError } from '@matryoshka-ts/core';
import { type ClipModel, type ClipScoreDefinition, type FeatureExtractor, clipScore } from '@matryoshka-ts/metrics';
import {
  type OpenRun,
  type RunKind,
  formatDuration,
  openRun,
  readCheckpointInfo,
  readRunManifest,
  runCheckpointPath,
} from '@matryoshka-ts/pipelines';
import { generateCommand } from './generate-command.js';
import { captionedSamples, fidReport } from './metric-commands.js';
import { type NetworkOptions, PROXY_NOTE, openClip, openFeatures } from './networks.js';
import { type PlotSeries, lineChartSvg, panelGridSvg } from './plot.js';
import { runReference } from './run-reference.js';
import { type LabelledStats, imagesOf, statsOfImages } from './statistics.js';

/** The augmentation levels a cascaded run is evaluated at unless `--aug-levels` says otherwise. */
export const DEFAULT_AUG_LEVELS = [1, 100, 500, 700, 1000];

export interface CompareOptions extends NetworkOptions {
  /** Run directories (any kind: mdm, simple, cascaded, latent), or checkpoint files. */
  runs: string[];
  /** Samples per run (per augmentation level for a cascade). */
  n: number;
  /** Sampling steps (default: each run's `sampling.steps`). */
  steps?: number;
  /** Guidance weight (default: each run's `sampling.guidance`). */
  guidance?: number;
  sampler?: 'ddpm' | 'ddim';
  threshold?: 'none' | 'clip' | 'dynamic' | 'dynamic-deepfloyd';
  /** A cascade's augmentation levels, each in 1 … its schedule's steps (default `DEFAULT_AUG_LEVELS`). */
  augLevels?: number[];
  batch?: number;
  seed?: number;
  /** FID reference (.npz, images, `bundled`); default each run's own training images at its top resolution. */
  reference?: string;
  out: string;
  definition?: ClipScoreDefinition;
  log?: (line: string) => void;
}

/** One sampled setting's numbers. */
export interface CompareScores {
  fid: number;
  clip: number | null;
  /** Wall time of the run's `generate` per image (every stage, a latent run's decoding); null if never timed. */
  samplingSecondsPerImage: number | null;
}

export interface CompareEntry extends CompareScores {
  run: string;
  name: string;
  kind: RunKind;
  checkpoint: string;
  trainingSteps: number;
  /** Diffusion training wall time (every stage of a cascade; a latent run's autoencoder apart). */
  trainSeconds: number | null;
  autoencoderSeconds?: number | null;
  params: number;
  autoencoderParams?: number | null;
  /** The top resolution: the one sampled and measured. */
  resolution: number;
  samplingSteps: number;
  guidance: number;
  functionEvaluationsPerSample: number;
  reference: { source: string; n: number | null };
  /** The samples directory (a cascade's: its best level's). */
  samples: string;
  /** A cascade's best (lowest-FID) augmentation level, and every level measured. */
  augLevel?: number;
  augLevels?: Array<{ level: number } & CompareScores>;
}

/** Directory names for runs: each path's base name, with -2, -3 … added where two would clash. */
export function runNames(paths: string[]): string[] {
  const used = new Set<string>();
  return paths.map((path) => {
    const base = basename(resolve(path)).replace(/\.safetensors$/, '') || 'run';
    let name = base;
    for (let k = 2; used.has(name); k++) name = `${base}-${k}`;
    used.add(name);
    return name;
  });
}

/**
 * Checks everything that can be checked before any sampling: the runs exist, and each cascade's
 * augmentation levels lie in 1 … its schedule's steps (read from the checkpoints' headers).
 */
function checkOptions(options: CompareOptions, augLevels: number[]): void {
  if (!options.runs.length) throw new ConfigError('--runs needs at least one run directory');
  if (!Number.isInteger(options.n) || options.n < 2)
    throw new ConfigError(`--n must be an integer ≥ 2 (FID needs at least 2 samples), got ${options.n}`);
  if (!augLevels.length) throw new ConfigError('--aug-levels needs at least one level');
  for (const level of augLevels)
    if (!Number.isInteger(level) || level < 1)
      throw new ConfigError(`--aug-levels: ${level} is not a positive integer (levels are schedule steps)`);
  for (const path of options.runs) {
    if (!existsSync(path)) throw new ConfigError(`--runs ${path}: no such run directory`);
    const checkpoint = runCheckpointPath(path);
    if (!existsSync(checkpoint))
      throw new ConfigError(`--runs ${path}: no ${checkpoint} (not a training run directory)`);
    const manifest = statSync(path).isDirectory() ? readRunManifest(path) : undefined;
    if (manifest?.kind !== 'cascaded') continue;
    const steps = readCheckpointInfo(checkpoint).config.schedule.steps;
    const outside = augLevels.filter((level) => level > steps);
    if (outside.length)
      throw new ConfigError(
        `--aug-levels ${outside.join(',')}: the cascaded run ${path} takes levels in 1…${steps} ` +
          '(its schedule steps)',
      );
  }
}

/** Adds this call's sampling time to the samples directory's record, so a resumed generation keeps its timing. */
function recordTiming(dir: string, timer: { seconds: number; images: number }): number | null {
  const file = join(dir, 'timing.json');
  const old = existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')) as { seconds: number; images: number })
    : { seconds: 0, images: 0 };
  const total = { seconds: old.seconds + timer.seconds, images: old.images + timer.images };
  writeFileSync(file, `${JSON.stringify(total, null, 2)}\n`);
  return total.images > 0 ? total.seconds / total.images : null;
}

/**
 * `mdm-eval compare`: several runs of any kind (MDM, simple DM, cascaded, latent) side by side on
 * the same footing: N samples of each at its top resolution with the same sampling options, their
 * FID against the run's own training images (or `--reference`) and CLIP score, the sampling wall
 * time per image (only the run's `generate`: every cascade stage, a latent run's decoding; not PNG
 * writing or caption encoding), network evaluations per sample, parameters and training time. A
 * cascaded run is sampled at each of `augLevels` and reports its best (lowest-FID) level.
 *
 * Writes out/compare.json, out/compare.md and out/compare.svg (FID and CLIP against training step
 * and against training wall time). Each run is one point: its final checkpoint; per-snapshot curves
 * are `mdm-eval curves`. Samples stay in out/<run name>/samples[-aug<L>]/, so a re-run only makes
 * what is missing.
 */
export async function compareCommand(options: CompareOptions) {
  const log = options.log ?? (() => {});
  const augLevels = options.augLevels ?? DEFAULT_AUG_LEVELS;
  checkOptions(options, augLevels);
  mkdirSync(options.out, { recursive: true });
  const extractor = await openFeatures({ ...options, log });
  const clip = await openClip({ ...options, log });
  const references = new Map<string, LabelledStats>();
  const names = runNames(options.runs);
  const entries: CompareEntry[] = [];
  for (const [i, path] of options.runs.entries()) {
    const run = await openRun(path);
    try {
      const key = options.reference ?? `run-data:${run.dataset().id}`;
      if (!references.has(key)) references.set(key, await runReference(run, extractor, options.reference));
      const reference = references.get(key)!;
      entries.push(await evaluateRun(run, path, names[i], { extractor, clip, reference }, augLevels, options, log));
    } finally {
      run.dispose();
    }
  }

  const proxy = extractor.proxy || Boolean(clip?.proxy);
  const sharedSteps = entries.every((e) => e.samplingSteps === entries[0].samplingSteps);
  const report = {
    features: extractor.id,
    resize: extractor.resize,
    clip: clip?.id ?? null,
    definition: clip ? (options.definition ?? 'torchmetrics') : null,
    proxy,
    ...(proxy ? { note: PROXY_NOTE } : {}),
    n: options.n,
    /** The sampling steps every run used (null where runs kept their own, differing defaults). */
    steps: options.steps ?? (sharedSteps ? entries[0].samplingSteps : null),
    ...(options.guidance !== undefined ? { guidance: options.guidance } : {}),
    ...(entries.some((e) => e.kind === 'cascaded') ? { augLevels } : {}),
    runs: entries,
  };
  writeFileSync(join(options.out, 'compare.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(options.out, 'compare.md'), compareTable(report));
  writeFileSync(join(options.out, 'compare.svg'), comparePlot(report, extractor.proxy, clip?.proxy ?? false));
  return {
    out: options.out,
    json: join(options.out, 'compare.json'),
    table: join(options.out, 'compare.md'),
    plot: join(options.out, 'compare.svg'),
    ...report,
  };
}

/** Samples one run (a cascade at each augmentation level) and measures it. */
async function evaluateRun(
  run: OpenRun,
  path: string,
  name: string,
  measure: { extractor: FeatureExtractor; clip: ClipModel | undefined; reference: LabelledStats },
  augLevels: number[],
  options: CompareOptions,
  log: (line: string) => void,
): Promise<CompareEntry> {
  const { extractor, clip, reference } = measure;
  const settings =
    run.kind === 'cascaded'
      ? augLevels.map((level) => ({ augLevel: level as number | undefined, dir: `samples-aug${level}` }))
      : [{ augLevel: undefined, dir: 'samples' }];
  const measured: Array<{ level?: number; dir: string; steps: number; guidance: number } & CompareScores> = [];
  for (const setting of settings) {
    const dir = join(options.out, name, setting.dir);
    // Only the run's own sampling is timed: a wrapper around its generate.
    const timer = { seconds: 0, images: 0 };
    const timed: OpenRun = {
      ...run,
      generate: async (o) => {
        const started = performance.now();
        const images = await run.generate(o);
        timer.seconds += (performance.now() - started) / 1000;
        timer.images += o.captions.length;
        return images;
      },
    };
    const gen = await generateCommand({
      run: path,
      opened: timed,
      out: dir,
      n: options.n,
      guidance: options.guidance,
      steps: options.steps,
      sampler: options.sampler,
      threshold: options.threshold,
      batch: options.batch,
      seed: options.seed,
      augLevel: setting.augLevel,
    });
    const samplingSecondsPerImage = recordTiming(dir, timer);
    const stats = await statsOfImages(extractor, dir, imagesOf(dir, {}));
    const { fid } = await fidReport(stats, reference, extractor.proxy);
    let clipValue: number | null = null;
    if (clip) {
      const { images, captions } = await captionedSamples(dir);
      clipValue = (await clipScore(clip, images, captions, { definition: options.definition })).score;
    }
    measured.push({
      level: setting.augLevel,
      dir,
      steps: gen.manifest.steps,
      guidance: gen.manifest.guidance,
      fid,
      clip: clipValue,
      samplingSecondsPerImage,
    });
    log(
      `compare: ${name}${setting.augLevel !== undefined ? ` (aug level ${setting.augLevel})` : ''}: ` +
        `FID ${fid.toFixed(3)}${clipValue !== null ? `, CLIP ${clipValue.toFixed(3)}` : ''}` +
        `${samplingSecondsPerImage !== null ? `, ${samplingSecondsPerImage.toPrecision(3)} s/image` : ''}`,
    );
  }
  const best = measured.reduce((a, b) => (b.fid < a.fid ? b : a));
  const latent = run.kind === 'latent';
  return {
    run: path,
    name,
    kind: run.kind,
    checkpoint: run.checkpoint,
    trainingSteps: run.trainingSteps,
    trainSeconds: run.trainSeconds ?? null,
    ...(latent ? { autoencoderSeconds: run.autoencoderSeconds ?? null } : {}),
    params: run.paramCount,
    ...(latent ? { autoencoderParams: run.autoencoderParamCount ?? null } : {}),
    resolution: run.resolutions[0],
    samplingSteps: best.steps,
    guidance: best.guidance,
    functionEvaluationsPerSample: run.functionEvaluations(best.steps, best.guidance),
    samplingSecondsPerImage: best.samplingSecondsPerImage,
    fid: best.fid,
    clip: best.clip,
    reference: { source: reference.source, n: reference.n ?? null },
    samples: best.dir,
    ...(run.kind === 'cascaded'
      ? {
          augLevel: best.level,
          augLevels: measured.map((m) => ({
            level: m.level!,
            fid: m.fid,
            clip: m.clip,
            samplingSecondsPerImage: m.samplingSecondsPerImage,
          })),
        }
      : {}),
  };
}

/** What compare.json holds. */
export interface CompareReport {
  features: string;
  resize?: string;
  clip: string | null;
  definition: string | null;
  proxy: boolean;
  note?: string;
  n: number;
  steps: number | null;
  guidance?: number;
  augLevels?: number[];
  runs: CompareEntry[];
}

const seconds = (s: number | null | undefined) =>
  s === null || s === undefined ? '–' : s < 60 ? `${s.toFixed(1)} s` : formatDuration(s);
const count = (n: number | null | undefined) => (n === null || n === undefined ? '–' : n.toLocaleString('en-US'));
const score = (x: number | null) => (x === null ? '–' : x.toFixed(3));
const perImage = (s: number | null) => (s === null ? '–' : s.toPrecision(3));

/** compare.md: one row per run, a cascade's levels in a second table, and what the numbers were measured with. */
export function compareTable(report: CompareReport): string {
  const latent = report.runs.some((r) => r.kind === 'latent');
  const header = [
    'run',
    'kind',
    'training steps',
    'train wall time',
    ...(latent ? ['autoencoder time'] : []),
    'params',
    ...(latent ? ['autoencoder params'] : []),
    'resolution (px)',
    'NFE / sample',
    'sampling (s / image)',
    'FID ↓',
    'CLIP score ↑',
    'aug level',
  ];
  const right = new Set(['run', 'kind']);
  const lines = [
    `| ${header.join(' | ')} |`,
    `|${header.map((h) => (right.has(h) ? '---' : '---:')).join('|')}|`,
    ...report.runs.map((r) => {
      const cells = [
        r.name,
        r.kind,
        count(r.trainingSteps),
        seconds(r.trainSeconds),
        ...(latent ? [seconds(r.autoencoderSeconds)] : []),
        count(r.params),
        ...(latent ? [count(r.autoencoderParams)] : []),
        String(r.resolution),
        String(r.functionEvaluationsPerSample),
        perImage(r.samplingSecondsPerImage),
        score(r.fid),
        score(r.clip),
        r.augLevel === undefined ? '–' : `${r.augLevel} (best)`,
      ];
      return `| ${cells.join(' | ')} |`;
    }),
  ];
  const cascades = report.runs.filter((r) => r.augLevels);
  if (cascades.length)
    lines.push(
      '',
      'Cascaded runs at each augmentation level of the low-resolution input:',
      '',
      '| run | aug level | FID ↓ | CLIP score ↑ | sampling (s / image) |',
      '|---|---:|---:|---:|---:|',
      ...cascades.flatMap((r) =>
        r.augLevels!.map(
          (a) =>
            `| ${r.name} | ${a.level}${a.level === r.augLevel ? ' (best)' : ''} | ${score(a.fid)} | ` +
            `${score(a.clip)} | ${perImage(a.samplingSecondsPerImage)} |`,
        ),
      ),
    );
  const references = [...new Set(report.runs.map((r) => `${r.reference.source} (${r.reference.n ?? '?'} images)`))];
  lines.push(
    '',
    `N = ${report.n} samples per run${cascades.length ? ' (per augmentation level)' : ''} at its top resolution; ` +
      `${report.steps ?? "each run's own number of"} sampling steps; ` +
      `guidance ${report.guidance ?? "each run's own"}. ` +
      'NFE: network evaluations per sample (guidance doubles them; a cascade counts every stage). ' +
      'Sampling time: wall time of the sampler per image, on this machine and backend.',
    `FID: Fréchet distance of ${report.features} features against ${references.join(', ')}.`,
    `CLIP score: ${report.clip ?? 'none'}${report.definition ? ` (${report.definition})` : ''}.`,
  );
  if (report.note) lines.push('', `**${report.note}.**`);
  return `${lines.join('\n')}\n`;
}

/** Training wall time on the time axes: the diffusion model(s) plus a latent run's autoencoder. */
const totalTrainSeconds = (r: CompareEntry) =>
  r.trainSeconds === null ? null : r.trainSeconds + (r.autoencoderSeconds ?? 0);

/**
 * compare.svg: FID (log scale) and CLIP score against training step and against training wall
 * time, one point per run (its final checkpoint), in a 2 × 2 grid (1 × 2 without CLIP).
 */
export function comparePlot(report: CompareReport, proxyFeatures: boolean, proxyClip: boolean): string {
  const times = report.runs.map(totalTrainSeconds).filter((s): s is number => s !== null);
  const longest = Math.max(0, ...times);
  const [unit, scale] = longest >= 7200 ? ['h', 3600] : longest >= 120 ? ['min', 60] : ['s', 1];
  const untimed = report.runs.filter((r) => r.trainSeconds === null).map((r) => r.name);
  const title =
    `${report.runs.length} run${report.runs.length === 1 ? '' : 's'} compared: FID` +
    `${report.clip ? ' and CLIP score' : ''} vs training step and training wall time`;
  const subtitle =
    `N = ${report.n} samples per run, one point per run (its final checkpoint) · features ${report.features}` +
    `${report.proxy ? ' · PROXY: not comparable with published scores' : ''}`;
  const series = (metric: 'fid' | 'clip', x: 'step' | 'time'): PlotSeries[] =>
    report.runs.map((r) => {
      const at = x === 'step' ? r.trainingSteps : totalTrainSeconds(r);
      const y = r[metric];
      return {
        name: `${r.name} (${r.kind})`,
        points:
          at === null || y === null
            ? []
            : [
                {
                  x: at / (x === 'step' ? 1 : scale),
                  y,
                  ...(r.augLevel !== undefined ? { label: `aug ${r.augLevel}` } : {}),
                },
              ],
      };
    });
  const size = { width: 760, height: 460 };
  const fidLabel = `FID${proxyFeatures ? ' (proxy features)' : ''}, log scale`;
  const clipLabel = `CLIP score (${report.definition}${proxyClip ? ', proxy' : ''})`;
  const latent = report.runs.some((r) => r.kind === 'latent');
  const timeLabel = `training wall time (${unit}${latent ? '; latent runs: diffusion + autoencoder' : ''})`;
  const timeNote = untimed.length ? `no recorded training time: ${untimed.join(', ')}` : undefined;
  const panels = [
    lineChartSvg(series('fid', 'step'), {
      title: 'FID vs training step',
      xLabel: 'training step',
      yLabel: fidLabel,
      logY: true,
      ...size,
    }),
    lineChartSvg(series('fid', 'time'), {
      title: 'FID vs training wall time',
      subtitle: timeNote,
      xLabel: timeLabel,
      yLabel: fidLabel,
      logY: true,
      ...size,
    }),
  ];
  if (report.clip)
    panels.push(
      lineChartSvg(series('clip', 'step'), {
        title: 'CLIP score vs training step',
        xLabel: 'training step',
        yLabel: clipLabel,
        ...size,
      }),
      lineChartSvg(series('clip', 'time'), {
        title: 'CLIP score vs training wall time',
        subtitle: timeNote,
        xLabel: timeLabel,
        yLabel: clipLabel,
        ...size,
      }),
    );
  return panelGridSvg(panels, { ...size, columns: 2, title, subtitle });
}
