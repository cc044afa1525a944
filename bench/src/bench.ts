// `pnpm bench`: the default model's training step and sampling step in tfjs (each installed
// path) and in PyTorch CPU (bench/torch/mdm_reference.py, the same architecture and weights),
// alternating them in fresh processes on this machine, then the medians and the ratio
// tfjs / PyTorch of the fastest tfjs path. A benchmark, not a test. The last line is
//   ratio_train=<x> ratio_sample=<y>
//   pnpm bench [--preset emoji] [--batch 8] [--rounds 3] [--repeats 7] [--backends native,wasm]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { root, runJson, tsx } from './child.js';

const { values: opts } = parseArgs({
  options: {
    preset: { type: 'string', default: 'emoji' },
    batch: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    repeats: { type: 'string', default: '7' },
    backends: { type: 'string', default: 'native,wasm,tensorflow' },
  },
});

/** A python with torch: Debian's python3-torch is for /usr/bin/python3, which may not be first on PATH. */
function findTorchPython(): string | undefined {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return undefined;
}

/** The widest x86 vector extension the CPU reports (what oneDNN's and the addon's kernels can use). */
function vectorIsa(): string {
  let flags: string[] = [];
  try {
    flags = (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/);
  } catch {
    return 'unknown (no /proc/cpuinfo)';
  }
  const has = (f: string) => flags.includes(f);
  if (has('avx512f')) return `AVX-512 (${flags.filter((f) => f.startsWith('avx512')).join(' ')})`;
  return has('avx2') ? `AVX2${has('fma') ? ' + FMA' : ''}` : has('avx') ? 'AVX' : 'SSE only';
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cpuName = cpus()[0]?.model ?? 'unknown CPU';
console.log(`machine: ${cpus().length} × ${cpuName}, Node ${process.version}, load ${loadavg()[0].toFixed(2)}`);
console.log(`vector ISA: ${vectorIsa()}`);
console.log(
  `model: preset ${opts.preset}, batch ${opts.batch}; ${opts.rounds} rounds × ${opts.repeats} timed steps (median), ` +
    'tfjs and PyTorch alternating',
);

const python = findTorchPython();
let refDir: string | undefined;
if (!python) {
  console.log(
    "PyTorch: not installed. Install Debian's build with `sudo apt-get install -y python3-torch` " +
      '(it brings OpenBLAS); the reference script needs nothing else.',
  );
} else {
  refDir = mkdtempSync(join(tmpdir(), 'mdm-bench-'));
  const exported = spawnSync(process.execPath, [...tsx, 'bench/src/export-reference.ts', refDir, opts.preset!], {
    cwd: root,
    encoding: 'utf8',
  });
  if (exported.status !== 0) throw new Error(`exporting the reference weights failed:\n${exported.stderr}`);
}

const backends = opts.backends!.split(',');
const results = new Map<string, Record<string, unknown>[]>();
const add = (key: string, r: Record<string, unknown> | { error: string }) => {
  if ('error' in r) {
    if (!results.has(`${key}:error`)) console.log(`${key}: unavailable (${r.error})`);
    results.set(`${key}:error`, []);
    return;
  }
  results.set(key, [...(results.get(key) ?? []), r]);
  const t = r as { train_step_s: number; sample_step_s: number };
  console.log(`  ${key.padEnd(10)} train ${t.train_step_s.toFixed(3)} s  sample ${t.sample_step_s.toFixed(3)} s`);
};
for (let round = 1; round <= Number(opts.rounds); round++) {
  console.log(`round ${round}`);
  for (const b of backends) {
    if (results.has(`${b}:error`)) continue;
    add(b, runJson(process.execPath, [...tsx, 'bench/src/tfjs-steps.ts', b, opts.preset!, opts.batch!, opts.repeats!]));
    if (python && refDir)
      add(
        'pytorch',
        runJson(python, [
          'bench/torch/mdm_reference.py',
          refDir,
          '--bench',
          '--batch',
          opts.batch!,
          '--repeats',
          opts.repeats!,
          '--threads',
          String(Math.min(cpus().length, 64)),
        ]),
      );
  }
}

console.log('\nmedians over rounds:');
const summary = new Map<string, { train: number; sample: number; last: Record<string, unknown> }>();
for (const [key, rs] of results) {
  if (key.endsWith(':error') || rs.length === 0) continue;
  const s = {
    train: median(rs.map((r) => r.train_step_s as number)),
    sample: median(rs.map((r) => r.sample_step_s as number)),
    last: rs[rs.length - 1],
  };
  summary.set(key, s);
  const mem =
    key === 'pytorch'
      ? `peak RSS ${s.last.peak_rss_mib} MiB`
      : `peak RSS ${s.last.peak_rss_mib} MiB, tf.memory ${s.last.tf_memory_mib} MiB, ` +
        `tensors/step ${s.last.tensors_per_step}`;
  const what =
    key === 'pytorch'
      ? `torch ${s.last.torch}, ${s.last.threads} threads, ${String(s.last.blas).split(' (')[0]}`
      : String(s.last.description);
  console.log(`  ${key.padEnd(10)} train ${s.train.toFixed(3)} s  sample ${s.sample.toFixed(3)} s  (${what}; ${mem})`);
  const impls = s.last.onednn_implementations as Record<string, number> | undefined;
  if (impls && Object.keys(impls).length > 0) {
    const list = Object.entries(impls).map(([what, plans]) => `${what} (${plans} ${plans === 1 ? 'shape' : 'shapes'})`);
    console.log(`             oneDNN per direction: ${list.join('; ')}`);
  }
}
const tfjs = [...summary].filter(([k]) => k !== 'pytorch').sort((a, b) => a[1].train - b[1].train)[0];
const torch = summary.get('pytorch');
if (!tfjs) throw new Error('no tfjs backend ran');
if (!torch) {
  console.log(`fastest tfjs path: ${tfjs[0]}; no PyTorch time to compare with`);
  console.log('ratio_train=unavailable ratio_sample=unavailable');
} else {
  console.log(`fastest tfjs path: ${tfjs[0]} (tfjs time / PyTorch time)`);
  console.log(
    `ratio_train=${(tfjs[1].train / torch.train).toFixed(2)} ` +
      `ratio_sample=${(tfjs[1].sample / torch.sample).toFixed(2)}`,
  );
}
