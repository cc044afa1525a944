// The GPU check (issue 16): on a machine with a GPU, in one run, reports the WebGPU adapter, runs
// the parity suites (model, losses, samplers) on `webgpu` against every ml-mdm fixture folder,
// times the default model's training and sampling steps and a 64 px step on `webgpu` against
// `native`, the full-size cc12m-64 step on `webgpu`, and FID feature extraction on ONNX Runtime's
// WebGPU provider against its CPU one where bench/src/fid-throughput.ts exists. Ends with
//   ratio_gpu_train=<native time / webgpu time> ratio_gpu_sample=<…>
// (above 1: the GPU is faster). Each measurement runs in a fresh process.
//
// tooling/scripts/gpu-check.sh packs it (one bundled file, Node, Dawn, the native addon, the
// fixtures, a Vulkan loader) for a machine with no network and no Node, and runs it there
// (docs/performance.md, "On a GPU"). From the sources, here:
//   node --conditions=source --import tsx bench/src/gpu-check.ts [--small] [--skip parity,fid,…]
// `--small` shrinks batches and repeats and skips the full-size model (a software renderer).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeMachine, printMachine } from './machine.js';
import { type StepTimes, timeSteps } from './gpu-steps.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Bundled (gpu-check.mjs beside parity.mjs), or run from the sources through tsx. */
const bundled = !import.meta.url.endsWith('.ts');
const repoRoot = join(here, '..', '..');

/** A step-timing plan: which model, at which batch, on which backends, how many timed steps. */
interface Plan {
  label: string;
  model: string;
  batch: number;
  repeats: number;
  backends: string[];
}

const USAGE = `GPU check: adapter, parity on webgpu, webgpu against native step times, FID throughput
  gpu-check [--small] [--skip parity,default,64,full,fid] [--budget-s 540]
  gpu-check steps <backend> <model> <batch> <repeats>     (one step timing, one JSON line)
  gpu-check fid <device> <batch> <batches>                (bench/src/fid-throughput.ts on one device)`;

/** Dawn repeats two lines about WebGPU limits at every device; they say nothing about the run. */
const quiet = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.trim() && !/artificially reduced|^Warning: maxDynamic/.test(l))
    .join('\n');

/** Runs a child with the time left; returns whether it succeeded and its output (stdout, then stderr). */
function child(args: string[], deadline: number, env: Record<string, string> = {}): { ok: boolean; out: string } {
  const timeout = Math.max(10_000, deadline - Date.now());
  const r = spawnSync(process.execPath, args, {
    cwd: bundled ? here : repoRoot,
    encoding: 'utf8',
    timeout,
    maxBuffer: 1 << 26,
    env: { ...process.env, ...env },
  });
  const text = quiet(`${r.stdout ?? ''}\n${r.stderr ?? ''}`);
  if (r.error) return { ok: false, out: `${text}\n${r.error.message}` };
  return { ok: r.status === 0, out: text };
}

const self = () =>
  bundled ? [join(here, 'gpu-check.mjs')] : ['--conditions=source', '--import', 'tsx', fileURLToPath(import.meta.url)];

/** One measurement in a fresh process, or why it could not run. */
function measure(backend: string, plan: Plan, deadline: number): StepTimes | string {
  const r = child([...self(), 'steps', backend, plan.model, String(plan.batch), String(plan.repeats)], deadline);
  const line = r.out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (r.ok && line) return JSON.parse(line) as StepTimes;
  const lines = r.out.trim().split('\n');
  return (lines.find((l) => /Error: /.test(l)) ?? lines.slice(-1)[0] ?? 'failed').trim().slice(0, 300);
}

async function check(): Promise<void> {
  const { values: opts } = parseArgs({
    options: {
      small: { type: 'boolean', default: false },
      skip: { type: 'string', default: '' },
      'budget-s': { type: 'string', default: '540' },
    },
  });
  const started = Date.now();
  const deadline = started + Number(opts['budget-s']) * 1000;
  const skip = new Set(opts.skip!.split(',').filter(Boolean));
  const small = opts.small!;
  const m = describeMachine();
  printMachine(m);
  console.log(`webgpu through Dawn's ${process.env.MDM_WEBGPU_BACKEND ?? 'default (vulkan on Linux)'} backend`);
  const summary: string[] = [];

  // The adapter, from the smallest model's run (a failure here says why webgpu does not start).
  const probe = measure('webgpu', { label: 'probe', model: 'micro', batch: 1, repeats: 1, backends: [] }, deadline);
  const adapter = typeof probe === 'string' ? `unavailable: ${probe}` : probe.description;
  console.log(`adapter: ${adapter}`);
  summary.push(`adapter: ${adapter}`);
  if (typeof probe === 'string') {
    console.log('ratio_gpu_train=unavailable ratio_gpu_sample=unavailable');
    process.exitCode = 1;
    return;
  }

  if (!skip.has('parity')) {
    console.log(`\nparity on webgpu (${small ? 'the default test run’s fixture folders' : 'every fixture folder'}):`);
    // vitest (from the sources) without colours, so that its summary line reads plainly.
    const env: Record<string, string> = { NO_COLOR: '1', MDM_WEBGPU_FIXTURES: small ? 'default' : 'all' };
    const r = bundled
      ? child([join(here, 'parity.mjs')], deadline, env)
      : child(
          [
            join(repoRoot, 'node_modules/vitest/vitest.mjs'),
            'run',
            '--root',
            join(repoRoot, 'tooling/parity'),
            'src/model.webgpu.test.ts',
            'src/loss.webgpu.test.ts',
            'src/sampler.webgpu.test.ts',
          ],
          deadline,
          env,
        );
    console.log(r.out);
    const line = /parity: (.*)|Tests +(.*)/.exec(r.out)?.slice(1).find(Boolean)?.trim();
    summary.push(`parity on webgpu: ${line ?? (r.ok ? 'passed' : 'failed (see above)')}`);
    if (!r.ok) process.exitCode = 1;
  }

  const plans: Array<Plan & { key: string; ratio?: string }> = [
    {
      key: 'default',
      label: 'the default model (emoji, 64 → 32 → 16 px)',
      model: 'emoji',
      batch: small ? 2 : 8,
      repeats: small ? 2 : 10,
      backends: ['webgpu', 'native'],
      ratio: '',
    },
    {
      key: '64',
      label: 'a 64 px cc12m-64-sized UNet at a quarter of its widths (cc12m-64-quarter; native holds no more)',
      model: 'cc12m-64-quarter',
      batch: 1,
      repeats: small ? 1 : 5,
      backends: ['webgpu', 'native'],
      ratio: '_64',
    },
    {
      key: 'full',
      label: 'cc12m-64 at full size (461 M parameters; over the wasm heap that native computes in)',
      model: 'cc12m-64',
      batch: 8,
      repeats: 5,
      backends: ['webgpu'],
    },
  ];
  const ratios: string[] = [];
  /** Times a plan on its backends; a plan with `ratio` adds its native / webgpu line. */
  const runPlan = (plan: (typeof plans)[number]) => {
    if (skip.has(plan.key) || (small && plan.key === 'full')) {
      summary.push(`${plan.model}: skipped (${skip.has(plan.key) ? '--skip' : '--small'})`);
      if (plan.ratio !== undefined)
        ratios.push(`ratio_gpu_train${plan.ratio}=skipped ratio_gpu_sample${plan.ratio}=skipped`);
      return;
    }
    console.log(`\n${plan.label}, batch ${plan.batch}, ${plan.repeats} timed steps after 2 warm-up steps:`);
    const got = new Map<string, StepTimes>();
    for (const backend of plan.backends) {
      const r = measure(backend, plan, deadline);
      if (typeof r === 'string') {
        console.log(`  ${backend}: unavailable (${r})`);
        summary.push(`${plan.model} batch ${plan.batch} on ${backend}: unavailable (${r})`);
        continue;
      }
      got.set(backend, r);
      const line =
        `${plan.model} batch ${plan.batch} on ${backend}: train ${r.train_step_s.toFixed(3)} s ` +
        `(${(plan.batch / r.train_step_s).toPrecision(3)} img/s), ` +
        `sample ${r.sample_step_s.toFixed(3)} s per step`;
      console.log(
        `  ${line}; ${r.params.toLocaleString('en')} params, build ${r.build_s} s, ` +
          `warm-up ${r.warmup_train_s} / ${r.warmup_sample_s} s, tf.memory ${r.tf_memory_mib} MiB (${r.description})`,
      );
      summary.push(line);
    }
    if (plan.ratio === undefined) return;
    const [gpu, cpu] = [got.get('webgpu'), got.get('native')];
    const fmt = (a?: number, b?: number) => (a && b ? (a / b).toFixed(2) : 'unavailable');
    ratios.push(
      `ratio_gpu_train${plan.ratio}=${fmt(cpu?.train_step_s, gpu?.train_step_s)} ` +
        `ratio_gpu_sample${plan.ratio}=${fmt(cpu?.sample_step_s, gpu?.sample_step_s)}`,
    );
  };
  /** bench/src/fid-throughput.ts, in a fresh process per device (ONNX Runtime's own Dawn for webgpu). */
  const fid = () => {
    console.log('\nFID feature extraction (ONNX Runtime, Inception at 299 px), images/s:');
    for (const device of ['webgpu', 'cpu']) {
      const r = child([...self(), 'fid', device, small ? '2' : '16', small ? '1' : '5'], deadline);
      const line = /fid_images_per_s .*/.exec(r.out)?.[0];
      const why = r.out.split('\n').find((l) => /Error: /.test(l)) ?? r.out.split('\n').slice(-1)[0];
      console.log(`  ${line ?? `${device}: unavailable (${why?.trim().slice(0, 300)})`}`);
      summary.push(line ?? `fid_images_per_s device=${device} value=unavailable`);
    }
  };
  // The full-size model last: it takes the longest, and the time left bounds it.
  for (const plan of plans.filter((p) => p.key !== 'full')) runPlan(plan);
  if (!skip.has('fid')) fid();
  runPlan(plans.find((p) => p.key === 'full')!);

  console.log(`\nsummary (${((Date.now() - started) / 1000).toFixed(0)} s; ${m.cores} cores, ${m.cpu}):`);
  for (const line of summary) console.log(`  ${line}`);
  console.log('(ratio_gpu_*: native time / webgpu time; above 1 the GPU is faster)');
  for (const line of [...ratios].reverse()) console.log(line);
}

if (process.argv[2] === 'steps') {
  const [backend, model, batch, repeats] = process.argv.slice(3);
  console.log(JSON.stringify(await timeSteps(backend, model, Number(batch), Number(repeats))));
} else if (process.argv[2] === 'fid') {
  const [device, batch, batches] = process.argv.slice(3);
  const { fidThroughput, throughputLine } = await import('./fid-throughput.js');
  const r = await fidThroughput({ device: device as 'cpu' | 'webgpu', batch: Number(batch), batches: Number(batches) });
  console.log(`# ${r.description}`);
  console.log(throughputLine(r));
} else if (process.argv.includes('--help')) {
  console.log(USAGE);
} else {
  await check();
}
