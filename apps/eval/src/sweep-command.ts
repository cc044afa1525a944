import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ClipScoreDefinition, clipScore } from '@matryoshka-ts/metrics';
import { openRun } from '@matryoshka-ts/pipelines';
import { generateCommand } from './generate-command.js';
import { captionedSamples } from './metric-commands.js';
import { type NetworkOptions, PROXY_NOTE, openClip, openFeatures } from './networks.js';
import { lineChartSvg } from './plot.js';
import { runReference } from './run-reference.js';
import { fidBetween, imagesOf, statsOfImages } from './statistics.js';
import { ConfigError } from '@matryoshka-ts/core';

export interface SweepOptions extends NetworkOptions {
  run: string;
  guidance: number[];
  n: number;
  steps?: number;
  batch?: number;
  seed?: number;
  out?: string;
  reference?: string;
  definition?: ClipScoreDefinition;
  log?: (line: string) => void;
}

export interface SweepRow {
  guidance: number;
  fid: number;
  clip_score: number | null;
  n: number;
}

/**
 * `mdm-eval sweep`: samples at each guidance weight w, their FID against the run's training
 * images (or `--reference`) and their CLIP score, as a table and the paper's FID–CLIP trade-off
 * plot (Fig. 8c form; FID against w when there is no CLIP model). Samples are kept per w, so a
 * re-run (or one with more weights) only makes what is missing.
 */
export async function sweepCommand(options: SweepOptions) {
  if (!options.guidance.length || options.guidance.some((w) => !(w >= 0)))
    throw new ConfigError(`--guidance needs weights ≥ 0, got ${options.guidance.join(',')}`);
  const log = options.log ?? (() => {});
  const out = options.out ?? join(options.run, 'eval', 'sweep');
  mkdirSync(out, { recursive: true });
  const run = await openRun(options.run);
  const extractor = await openFeatures({ ...options, log });
  const clip = await openClip({ ...options, log });
  const reference = await runReference(run, extractor, options.reference);
  log(
    `sweep: reference ${reference.source} (${reference.n} images), ` +
      `features ${extractor.id}${clip ? `, CLIP ${clip.id}` : ''}`,
  );
  const rows: SweepRow[] = [];
  let steps = 0;
  for (const w of options.guidance) {
    const samples = join(out, `w-${w}`);
    const gen = await generateCommand({
      run: options.run,
      opened: run,
      out: samples,
      n: options.n,
      guidance: w,
      steps: options.steps,
      batch: options.batch,
      seed: options.seed,
    });
    steps = gen.manifest.steps;
    const stats = await statsOfImages(extractor, samples, imagesOf(samples, {}));
    const fid = fidBetween(stats, reference);
    let clipValue: number | null = null;
    if (clip) {
      const { images, captions } = await captionedSamples(samples);
      clipValue = (await clipScore(clip, images, captions, { definition: options.definition })).score;
    }
    rows.push({ guidance: w, fid, clip_score: clipValue, n: options.n });
    log(
      `sweep: w = ${w}: FID ${fid.toFixed(3)}` +
        `${clipValue !== null ? `, CLIP ${clipValue.toFixed(3)}` : ''} (${gen.generated} new samples)`,
    );
  }
  run.dispose();
  const proxy = extractor.proxy || Boolean(clip?.proxy);
  const report = {
    run: options.run,
    checkpoint: run.checkpoint,
    step: run.progress.step,
    n: options.n,
    sampling_steps: steps,
    reference: { source: reference.source, n: reference.n },
    features: extractor.id,
    resize: extractor.resize,
    clip: clip?.id ?? null,
    definition: clip ? (options.definition ?? 'torchmetrics') : null,
    proxy,
    ...(proxy ? { note: PROXY_NOTE } : {}),
    rows,
  };
  writeFileSync(join(out, 'sweep.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(out, 'sweep.md'), sweepTable(report));
  const subtitle =
    `${run.progress.step} steps, N = ${options.n}, ${steps} sampling steps · ${extractor.id}` +
    `${proxy ? ' · PROXY: not comparable with published scores' : ''}`;
  const svg = clip
    ? lineChartSvg(
        [
          {
            name: 'guidance sweep',
            points: rows.map((r) => ({ x: r.clip_score!, y: r.fid, label: `w=${r.guidance}` })),
          },
        ],
        {
          title: 'FID vs CLIP score over guidance weights',
          subtitle,
          xLabel: `CLIP score (${report.definition}${clip.proxy ? ', proxy' : ''})`,
          yLabel: `FID${extractor.proxy ? ' (proxy features)' : ''}`,
          markers: true,
          width: 900,
        },
      )
    : lineChartSvg(
        [{ name: 'FID', points: rows.map((r) => ({ x: r.guidance, y: r.fid, label: `w=${r.guidance}` })) }],
        {
          title: 'FID over guidance weights',
          subtitle,
          xLabel: 'guidance weight w',
          yLabel: `FID${extractor.proxy ? ' (proxy features)' : ''}`,
          markers: true,
          width: 900,
        },
      );
  writeFileSync(join(out, 'sweep.svg'), svg);
  return { out, table: join(out, 'sweep.md'), plot: join(out, 'sweep.svg'), ...report };
}

function sweepTable(report: {
  rows: SweepRow[];
  n: number;
  features: string;
  clip: string | null;
  definition: string | null;
  reference: { source: string; n?: number };
  proxy: boolean;
  note?: string;
}): string {
  const lines = [
    `| guidance w | FID | CLIP score |`,
    `|---:|---:|---:|`,
    ...report.rows.map(
      (r) => `| ${r.guidance} | ${r.fid.toFixed(3)} | ${r.clip_score === null ? '–' : r.clip_score.toFixed(3)} |`,
    ),
    '',
    `N = ${report.n} samples per weight; reference ${report.reference.source} (${report.reference.n} images); ` +
      `features ${report.features}; CLIP ${report.clip ?? 'none'}` +
      `${report.definition ? ` (${report.definition})` : ''}.`,
  ];
  if (report.note) lines.push('', `**${report.note}.**`);
  return `${lines.join('\n')}\n`;
}
