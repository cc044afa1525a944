// What `pnpm bench` and `pnpm bench --sweep` say about the machine, and where they find PyTorch.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

/** A python with torch: Debian's python3-torch is for /usr/bin/python3, which may not be first on PATH. */
export function findTorchPython(): string | undefined {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return undefined;
}

/** What to print where PyTorch is missing. */
export const NO_TORCH =
  "PyTorch: not installed. Install Debian's build with `sudo apt-get install -y python3-torch` " +
  '(it brings OpenBLAS); the reference script needs nothing else.';

/** The widest x86 vector extension the CPU reports (what oneDNN's and the addon's kernels can use). */
export function vectorIsa(): string {
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

/** The machine as both benches print it (and the sweep records it). */
export function describeMachine() {
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown CPU',
    node: process.version,
    load: Number(loadavg()[0].toFixed(2)),
    isa: vectorIsa(),
  };
}

/** Prints the `machine:` and `vector ISA:` lines. */
export function printMachine(m = describeMachine()): void {
  console.log(`machine: ${m.cores} × ${m.cpu}, Node ${m.node}, load ${m.load.toFixed(2)}`);
  console.log(`vector ISA: ${m.isa}`);
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
