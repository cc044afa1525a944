import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, ConfigError } from '@matryoshka-ts/core';
import type { TrainProgress } from './run-checkpoint.js';

/** The files that make a folder a run: starting a fresh run over them would lose its history. */
const RUN_TRACES = ['checkpoint.safetensors', 'metrics.jsonl', 'run.json'];

/**
 * Makes `out` ready for a fresh run. A folder that already holds a run (its checkpoint, metrics or
 * run.json) is refused, naming `--resume` and `--force`; with `force` the old run is moved aside to
 * `<out>.replaced-<time>` (nothing is deleted) and an empty folder takes its place. Returns where
 * the old run went, if it was moved.
 */
export function prepareFreshRunFolder(out: string, force = false, now = new Date()): string | undefined {
  const traces = RUN_TRACES.filter((f) => existsSync(join(out, f)));
  if (traces.length === 0) {
    mkdirSync(out, { recursive: true });
    return undefined;
  }
  if (!force) {
    throw new ConfigError(
      `${out} already holds a run (${traces.join(', ')}): continue it with --resume ${out}, ` +
        'or start over with --force (the old run is moved aside, not deleted)',
    );
  }
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  let aside = `${out}.replaced-${stamp}`;
  for (let n = 2; existsSync(aside); n++) aside = `${out}.replaced-${stamp}-${n}`;
  renameSync(out, aside);
  mkdirSync(out, { recursive: true });
  return aside;
}

/**
 * Checks the progress a checkpoint says it reached before a run resumes from it: counts are
 * non-negative integers and the phase is one of the run's. A bad one is refused, naming the file
 * and the field (a run resumed from it would drop its metrics past a nonsense step).
 */
export function checkProgress(progress: TrainProgress, phases: number, file: string): void {
  const bad = (field: string, value: unknown, why: string): never => {
    throw new CheckpointError(`${file}: progress.${field} is ${JSON.stringify(value)}: ${why}`);
  };
  const count = (field: string, value: unknown) => {
    if (!(typeof value === 'number' && Number.isInteger(value) && value >= 0))
      bad(field, value, 'expected a non-negative integer');
  };
  for (const field of ['step', 'phase', 'phaseStep', 'adamStep', 'emaUpdates', 'badInARow', 'badTotal'] as const)
    count(field, progress[field]);
  count('data.epoch', progress.data?.epoch);
  count('data.cursor', progress.data?.cursor);
  if (progress.phase >= phases) bad('phase', progress.phase, `the run has ${phases} phases`);
  if (progress.phaseStep > progress.step)
    bad('phaseStep', progress.phaseStep, `more than progress.step (${progress.step})`);
  if (progress.seconds !== undefined && !(Number.isFinite(progress.seconds) && progress.seconds >= 0))
    bad('seconds', progress.seconds, 'expected a non-negative number');
}
