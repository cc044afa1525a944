// The measurement `pnpm bench` and `pnpm bench --sweep` share: export a model for the PyTorch
// reference, then alternate fresh processes (tfjs-steps.ts per backend, mdm_reference.py --bench)
// so that both sides see the same machine load, and take medians over the rounds.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, runJson, tsx } from './child.js';
import { median } from './machine.js';

/** The fields of a step-timing child's JSON line that both sides print (tfjs-steps.ts, mdm_reference.py). */
export interface StepResult {
  params: number;
  train_step_s: number;
  sample_step_s: number;
  peak_rss_mib: number;
  [field: string]: unknown;
}

/**
 * Writes what mdm_reference.py needs for a train preset or sweep model into a fresh temporary
 * directory and returns it; `backend` runs the forward whose outputs `--check` compares with.
 */
export function exportReference(model: string, backend = 'cpu'): string {
  const dir = mkdtempSync(join(tmpdir(), 'mdm-bench-'));
  const r = spawnSync(process.execPath, [...tsx, 'bench/src/export-reference.ts', dir, model, backend], {
    cwd: root,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`exporting the reference weights of ${model} failed:\n${r.stderr}`);
  return dir;
}

export interface Rounds {
  model: string;
  batch: number;
  rounds: number;
  repeats: number;
  /** tfjs backends, each followed by a PyTorch run when `python` and `refDir` are given. */
  backends: string[];
  python?: string;
  refDir?: string;
}

/** Every run's result per side (a backend name or `pytorch`), and why a side could not run. */
export interface RoundResults {
  results: Map<string, StepResult[]>;
  errors: Map<string, string>;
}

/** Runs the rounds, printing each run's times as it ends; a side that fails once is skipped afterwards. */
export function alternate(o: Rounds): RoundResults {
  const results = new Map<string, StepResult[]>();
  const errors = new Map<string, string>();
  const add = (key: string, r: Record<string, unknown> | { error: string }) => {
    if ('error' in r) {
      if (!errors.has(key)) console.log(`  ${key}: unavailable (${r.error})`);
      errors.set(key, String(r.error));
      return;
    }
    const t = r as StepResult;
    results.set(key, [...(results.get(key) ?? []), t]);
    console.log(`  ${key.padEnd(10)} train ${t.train_step_s.toFixed(3)} s  sample ${t.sample_step_s.toFixed(3)} s`);
  };
  const [batch, repeats] = [String(o.batch), String(o.repeats)];
  for (let round = 1; round <= o.rounds; round++) {
    console.log(`round ${round}`);
    for (const b of o.backends) {
      if (errors.has(b)) continue;
      add(b, runJson(process.execPath, [...tsx, 'bench/src/tfjs-steps.ts', b, o.model, batch, repeats]));
      if (o.python && o.refDir && !errors.has('pytorch')) {
        const threads = String(Math.min(cpus().length, 64));
        const args = ['--bench', '--batch', batch, '--repeats', repeats, '--threads', threads];
        add('pytorch', runJson(o.python, ['bench/torch/mdm_reference.py', o.refDir, ...args]));
      }
    }
  }
  return { results, errors };
}

/** One side's medians over the rounds, its largest peak RSS, and its last result (for the details). */
export interface SideSummary {
  train: number;
  sample: number;
  peakRssMib: number;
  last: StepResult;
}

export function summarise(results: Map<string, StepResult[]>): Map<string, SideSummary> {
  const summary = new Map<string, SideSummary>();
  for (const [key, rs] of results) {
    if (rs.length === 0) continue;
    summary.set(key, {
      train: median(rs.map((r) => r.train_step_s)),
      sample: median(rs.map((r) => r.sample_step_s)),
      peakRssMib: Math.max(...rs.map((r) => r.peak_rss_mib)),
      last: rs[rs.length - 1],
    });
  }
  return summary;
}
