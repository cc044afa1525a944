import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { type ClipScoreDefinition, clipScore } from '@matryoshka-ts/metrics';
import { listSnapshots, openRun } from '@matryoshka-ts/pipelines';
import { generateCommand } from './generate-command.js';
import { captionedSamples } from './metric-commands.js';
import { type NetworkOptions, PROXY_NOTE, openClip, openFeatures } from './networks.js';
import { type PlotSeries, lineChartSvg } from './plot.js';
import { runReference } from './run-reference.js';
import { type LabelledStats, fidBetween, imagesOf, statsOfImages } from './statistics.js';
import { ConfigError } from '@matryoshka-ts/core';

export interface CurvesOptions extends NetworkOptions {
  runs: string[];
  n: number;
  steps?: number;
  guidance?: number;
  /** Resolution the metric is taken at (default: each run's final one); checkpoints without that level are skipped. */
  resolution?: number;
  batch?: number;
  seed?: number;
  out: string;
  reference?: string;
  definition?: ClipScoreDefinition;
  log?: (line: string) => void;
}

export interface CurvePoint {
  step: number;
  resolution: number;
  fid: number;
  clip_score: number | null;
}

/**
 * `mdm-eval curves`: FID (and CLIP score) against training step for several runs, from each run's
 * snapshots (`snapshotEvery`) and its final checkpoint — the paper's Fig. 4 form. Samples are kept
 * in each run's eval/curves/, so adding runs or re-plotting only makes what is missing.
 */
export async function curvesCommand(options: CurvesOptions) {
  const log = options.log ?? (() => {});
  if (!options.runs.length) throw new ConfigError('--runs needs at least one run directory');
  for (const r of options.runs)
    if (!existsSync(join(r, 'checkpoint.safetensors')))
      throw new ConfigError(`--runs ${r}: no checkpoint.safetensors (not a training run directory)`);
  mkdirSync(options.out, { recursive: true });
  const extractor = await openFeatures({ ...options, log });
  const clip = await openClip({ ...options, log });
  const series: Array<{
    run: string;
    resolution: number;
    reference: { source: string; n?: number };
    points: CurvePoint[];
    skipped: string[];
  }> = [];
  for (const runDir of options.runs) {
    const final = await openRun(runDir);
    const resolution = options.resolution ?? final.resolutions[0];
    const reference: LabelledStats = await runReference(final, extractor, options.reference);
    const checkpoints = listSnapshots(runDir).filter((s) => s.step < final.progress.step);
    checkpoints.push({ step: final.progress.step, path: final.checkpoint });
    final.dispose();
    const points: CurvePoint[] = [];
    const skipped: string[] = [];
    for (const c of checkpoints) {
      const run = await openRun(c.path);
      if (!run.resolutions.includes(resolution)) {
        skipped.push(`step ${c.step}: levels ${run.resolutions.join('/')} px, no ${resolution} px`);
        run.dispose();
        continue;
      }
      const guidance = options.guidance ?? run.config.sampling.guidance;
      const dir = join(
        runDir,
        'eval',
        'curves',
        `step-${String(c.step).padStart(6, '0')}-r${resolution}-w${guidance}-n${options.n}`,
      );
      await generateCommand({
        run: c.path,
        opened: run,
        out: dir,
        n: options.n,
        guidance,
        steps: options.steps,
        resolution,
        batch: options.batch,
        seed: options.seed,
      });
      run.dispose();
      const fid = fidBetween(await statsOfImages(extractor, dir, imagesOf(dir, {})), reference);
      let clipValue: number | null = null;
      if (clip) {
        const { images, captions } = await captionedSamples(dir);
        clipValue = (await clipScore(clip, images, captions, { definition: options.definition })).score;
      }
      points.push({ step: c.step, resolution, fid, clip_score: clipValue });
      log(
        `curves: ${runDir} step ${c.step}: FID ${fid.toFixed(3)}` +
          `${clipValue !== null ? `, CLIP ${clipValue.toFixed(3)}` : ''}`,
      );
    }
    if (skipped.length)
      log(`curves: ${runDir}: skipped ${skipped.length} checkpoint(s) without a ${resolution} px level`);
    series.push({ run: runDir, resolution, reference: { source: reference.source, n: reference.n }, points, skipped });
  }
  const proxy = extractor.proxy || Boolean(clip?.proxy);
  const report = {
    n: options.n,
    features: extractor.id,
    resize: extractor.resize,
    clip: clip?.id ?? null,
    definition: clip ? (options.definition ?? 'torchmetrics') : null,
    proxy,
    ...(proxy ? { note: PROXY_NOTE } : {}),
    runs: series,
  };
  writeFileSync(join(options.out, 'curves.json'), `${JSON.stringify(report, null, 2)}\n`);
  const name = (r: string) => basename(resolve(r));
  const subtitle =
    `N = ${options.n} samples per checkpoint · ${extractor.id}` +
    `${proxy ? ' · PROXY: not comparable with published scores' : ''}`;
  const plot = (metric: 'fid' | 'clip_score'): PlotSeries[] =>
    series.map((s) => ({
      name: `${name(s.run)} (${s.resolution} px)`,
      points: s.points.filter((p) => p[metric] !== null).map((p) => ({ x: p.step, y: p[metric] as number })),
    }));
  const plots = [join(options.out, 'curves-fid.svg')];
  writeFileSync(
    plots[0],
    lineChartSvg(plot('fid'), {
      title: 'FID vs training step',
      subtitle,
      xLabel: 'training step',
      yLabel: `FID${extractor.proxy ? ' (proxy features)' : ''}, log scale`,
      markers: true,
      logY: true,
      width: 900,
    }),
  );
  if (clip) {
    plots.push(join(options.out, 'curves-clip.svg'));
    writeFileSync(
      plots[1],
      lineChartSvg(plot('clip_score'), {
        title: 'CLIP score vs training step',
        subtitle,
        xLabel: 'training step',
        yLabel: `CLIP score (${report.definition}${clip.proxy ? ', proxy' : ''})`,
        markers: true,
        width: 900,
      }),
    );
  }
  const table = [
    '| run | step | resolution | FID | CLIP score |',
    '|---|---:|---:|---:|---:|',
    ...series.flatMap((s) =>
      s.points.map(
        (p) =>
          `| ${name(s.run)} | ${p.step} | ${p.resolution} | ${p.fid.toFixed(3)} | ` +
          `${p.clip_score === null ? '–' : p.clip_score.toFixed(3)} |`,
      ),
    ),
    '',
    `N = ${options.n} samples per checkpoint; features ${extractor.id}; CLIP ${clip?.id ?? 'none'}.`,
    ...(proxy ? ['', `**${PROXY_NOTE}.**`] : []),
  ];
  writeFileSync(join(options.out, 'curves.md'), `${table.join('\n')}\n`);
  return { out: options.out, plots, table: join(options.out, 'curves.md'), ...report };
}
