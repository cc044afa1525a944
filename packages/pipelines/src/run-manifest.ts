import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunKind } from './config.js';
import { writeRunFileAtomic } from './run-files.js';

/** `run.json` of a multi-stage run: what `openRun` and `mdm-eval compare` read. */
export interface RunManifest {
  format: 'matryoshka-ts/run/1';
  kind: RunKind;
  /** The stages in training order, their directories relative to the run's. */
  stages: Array<{ name: string; kind: 'autoencoder' | 'diffusion'; dir: string }>;
  /** A latent run's scale factor (measured once, then kept). */
  scaleFactor?: number;
}

export const RUN_MANIFEST = 'run.json';

/** Reads a run directory's manifest (undefined for a single-model run). */
export function readRunManifest(dir: string): RunManifest | undefined {
  const path = join(dir, RUN_MANIFEST);
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as RunManifest;
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeRunFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}
