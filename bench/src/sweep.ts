// `pnpm bench --sweep`: the plain bench's comparison (tfjs vs PyTorch, alternating fresh processes)
// over batch sizes of the default model and over model sizes (sweep-models.ts), with peak memory;
// writes <out>/performance-sweep.json and <out>/performance-sweep.svg (ratio against size).
//   pnpm bench --sweep [--rounds 3] [--repeats 7] [--big-rounds 3] [--big-repeats 5] [--model-batch 1]
//                      [--only emoji@8,nest-256-64@1] [--backend native] [--out docs]
// --rounds/--repeats set the cheap points (emoji up to batch 8), --big-* the others; --only runs
// some points alone. The model sweep runs at batch 1: tfjs `native` keeps every tensor in its 4 GiB
// WebAssembly memory, and a training step of cc12m-64-quarter already peaks at ~3 GB at batch 1
// (mostly its 32 px attention: 8 heads × 1024² logits per layer), so batch 2 fails there, and batch 8
// fails for nest-256-64 too (PyTorch peaks at 1.3 GB for the first at batch 1, 5.8 GB for the second
// at batch 8). With the defaults the sweep takes about 12–15 minutes on 2 cores, two thirds of it in
// the two larger models.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { root } from './child.js';
import { type SideSummary, alternate, exportReference, summarise } from './compare.js';
import { NO_TORCH, describeMachine, findTorchPython, printMachine } from './machine.js';
import { type Panel, sweepSvg } from './sweep-plot.js';
import { SWEEP_MODELS } from './sweep-models.js';

const { values: opts } = parseArgs({
  options: {
    sweep: { type: 'boolean' },
    rounds: { type: 'string', default: '3' },
    repeats: { type: 'string', default: '7' },
    'big-rounds': { type: 'string', default: '3' },
    'big-repeats': { type: 'string', default: '5' },
    'model-batch': { type: 'string', default: '1' },
    only: { type: 'string' },
    backend: { type: 'string', default: 'native' },
    out: { type: 'string', default: 'docs' },
  },
});

/** The default model's batch sizes (batch sweep). */
const BATCHES = [1, 8, 32];

interface Point {
  model: string;
  batch: number;
  sweeps: Array<'batch' | 'model'>;
  rounds: number;
  repeats: number;
}

/** The batch sweep of `emoji`, then every sweep model at the model batch (sharing emoji's point). */
function plan(): Point[] {
  const points: Point[] = [];
  const add = (model: string, batch: number, sweep: 'batch' | 'model') => {
    const p = points.find((q) => q.model === model && q.batch === batch);
    if (p) return void p.sweeps.push(sweep);
    const big = model !== 'emoji' || batch > 8;
    const rounds = Number(big ? opts['big-rounds'] : opts.rounds);
    points.push({ model, batch, sweeps: [sweep], rounds, repeats: Number(big ? opts['big-repeats'] : opts.repeats) });
  };
  for (const b of BATCHES) add('emoji', b, 'batch');
  for (const m of Object.keys(SWEEP_MODELS)) add(m, Number(opts['model-batch']), 'model');
  const only = opts.only?.split(',');
  const chosen = only ? points.filter((p) => only.includes(`${p.model}@${p.batch}`)) : points;
  if (chosen.length === 0) {
    console.error(`--only matches no point (points: ${points.map((p) => `${p.model}@${p.batch}`).join(', ')})`);
    process.exit(2);
  }
  return chosen;
}

/** A side's result as recorded: medians and peak memory, or why it did not run. */
type Side = { train_s: number; sample_s: number; peak_rss_mib: number } | { error: string };
const side = (s: SideSummary | undefined, error: string | undefined): Side | null =>
  s ? { train_s: s.train, sample_s: s.sample, peak_rss_mib: s.peakRssMib } : error ? { error } : null;
const ratio = (a: Side | null, b: Side | null, k: 'train_s' | 'sample_s') =>
  a && b && !('error' in a) && !('error' in b) ? Number((a[k] / b[k]).toFixed(3)) : null;

/** What the JSON records per point. */
interface PointResult extends Point {
  params: number | null;
  tfjs: Side | null;
  pytorch: Side | null;
  ratio_train: number | null;
  ratio_sample: number | null;
}

/** Why a tfjs child died, with the usual cause of a WebAssembly abort. */
const explain = (e: string) =>
  /Aborted\(\)|memory access out of bounds/.test(e)
    ? `${e} (likely the 4 GiB WebAssembly memory, where native keeps every tensor)`
    : e;

const machine = describeMachine();
printMachine(machine);
const python = findTorchPython();
const points = plan();
const sides = python ? `tfjs ${opts.backend} and PyTorch alternating` : `tfjs ${opts.backend} alone`;
console.log(`sweep: ${points.length} points, ${sides} in fresh processes; medians over rounds of timed steps`);
if (!python) console.log(`${NO_TORCH}\nTiming tfjs alone: no ratios.`);

const refDirs = new Map<string, string>();
const records: PointResult[] = [];
let torchInfo: Record<string, unknown> | null = null;
let tfjsInfo: string | null = null;
for (const p of points) {
  console.log(`\n== ${p.model}, batch ${p.batch} (${p.sweeps.join(' + ')} sweep): ${p.rounds} × ${p.repeats} steps`);
  // Exported on the measured backend: the cpu backend's forward of the larger models takes minutes.
  if (python && !refDirs.has(p.model)) refDirs.set(p.model, exportReference(p.model, opts.backend));
  const { results, errors } = alternate({ ...p, backends: [opts.backend!], python, refDir: refDirs.get(p.model) });
  const summary = summarise(results);
  const [t, tErr] = [summary.get(opts.backend!), errors.get(opts.backend!)];
  const tfjs = side(t, tErr && explain(tErr));
  const torch = side(summary.get('pytorch'), errors.get('pytorch'));
  const params = t?.last.params ?? summary.get('pytorch')?.last.params ?? null;
  if (t) tfjsInfo = String(t.last.description);
  if (summary.has('pytorch')) {
    const last = summary.get('pytorch')!.last;
    torchInfo = { version: last.torch, threads: last.threads, blas: String(last.blas).split(' (')[0] };
  }
  const ratios = { ratio_train: ratio(tfjs, torch, 'train_s'), ratio_sample: ratio(tfjs, torch, 'sample_s') };
  records.push({ ...p, params, tfjs, pytorch: torch, ...ratios });
  console.log(pointLine(records[records.length - 1]));
}

function pointLine(r: PointResult): string {
  const fmt = (s: Side | null) =>
    !s
      ? 'not run'
      : 'error' in s
        ? `failed (${s.error})`
        : `${s.train_s.toFixed(3)} / ${s.sample_s.toFixed(3)} s, peak RSS ${s.peak_rss_mib} MiB`;
  const params = r.params?.toLocaleString('en') ?? '?';
  const ratios = r.ratio_train === null ? 'no ratio' : `ratio ${r.ratio_train} / ${r.ratio_sample}`;
  const what = `${r.model} (${params} params), batch ${r.batch}, train / sample`;
  return `${what}: tfjs ${fmt(r.tfjs)}; PyTorch ${fmt(r.pytorch)}; ${ratios}`;
}

console.log('\nsummary (train / sample; ratio = tfjs / PyTorch):');
for (const r of records) console.log(`  ${pointLine(r)}`);

const date = new Date().toISOString();
const outDir = resolve(root, opts.out!);
mkdirSync(outDir, { recursive: true });
const json = {
  date,
  machine,
  tfjs: { backend: opts.backend, description: tfjsInfo },
  pytorch: torchInfo,
  points: records,
};
writeFileSync(join(outDir, 'performance-sweep.json'), `${JSON.stringify(json, null, 2)}\n`);

const toPoint = (r: PointResult, x: number, label: string, sublabel?: string) => ({
  x,
  label,
  sublabel,
  train: r.ratio_train,
  sample: r.ratio_sample,
});
const inSweep = (s: 'batch' | 'model') => records.filter((r) => r.sweeps.includes(s));
const panels: Panel[] = [
  {
    title: 'emoji over batch size',
    xLabel: 'batch size (log)',
    points: inSweep('batch').map((r) => toPoint(r, r.batch, String(r.batch))),
  },
  {
    title: `models at batch ${opts['model-batch']}`,
    xLabel: 'parameters (log)',
    points: inSweep('model').flatMap((r) =>
      r.params === null ? [] : [toPoint(r, r.params, `${(r.params / 1e6).toFixed(1)} M`, r.model)],
    ),
  },
];
const note = python ? '' : 'PyTorch was not installed: no ratios (tfjs times in performance-sweep.json)';
const title = `tfjs ${opts.backend} / PyTorch CPU, ${machine.cores} × ${machine.cpu}, ${date.slice(0, 10)}`;
writeFileSync(join(outDir, 'performance-sweep.svg'), sweepSvg(panels, title, note));
console.log(`\nwrote ${join(outDir, 'performance-sweep.json')} and ${join(outDir, 'performance-sweep.svg')}`);
for (const dir of refDirs.values()) rmSync(dir, { recursive: true, force: true });
