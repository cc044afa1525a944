import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, type RngState } from '@matryoshka-ts/core';
import { SafetensorsFile, type TensorToWrite, toFloat32, writeSafetensors } from '@matryoshka-ts/checkpoint';
import type { DataPosition, StreamPosition } from '@matryoshka-ts/data';
import type { TrainConfig } from './config.js';

/** Everything besides tensors that a resumed run needs to continue exactly. */
export interface TrainProgress {
  /** Training steps completed in the whole run. */
  step: number;
  /** Index of the current phase, and steps completed in it. */
  phase: number;
  phaseStep: number;
  rng: RngState;
  data: DataPosition;
  adamStep: number;
  emaUpdates: number;
  /** Non-finite losses: in a row, and in total. */
  badInARow: number;
  badTotal: number;
  /** Training wall time so far in seconds, over every resumed session (absent in older checkpoints). */
  seconds?: number;
  /** Streamed sources: inputs skipped up to the data position, by reason (a resumed run continues the counts). */
  dataSkipped?: Record<string, number>;
  /** The ranks of a data-parallel run (absent: 1). */
  world?: number;
  /** A data-parallel run over a streamed source: each rank's position in its own part of the shards. */
  dataRanks?: StreamPosition[];
}

/** The tensors of a training run (names are model parameter names). */
export interface TrainTensors {
  params: Map<string, tf.Tensor>;
  ema: Map<string, tf.Tensor>;
  adamM: Map<string, tf.Tensor>;
  adamV: Map<string, tf.Tensor>;
}

const FORMAT = 'matryoshka-ts/train-checkpoint/1';
const GROUPS = { params: 'model', ema: 'ema', adamM: 'adam.m', adamV: 'adam.v' } as const;

/**
 * Writes weights, EMA weights, optimizer state, progress (step, phase, RNG, data position) and the
 * resolved config into one safetensors file, atomically (temp file + rename).
 */
export async function saveCheckpoint(
  path: string,
  tensors: TrainTensors,
  progress: TrainProgress,
  config: TrainConfig,
): Promise<void> {
  const out = new Map<string, TensorToWrite>();
  for (const [group, prefix] of Object.entries(GROUPS) as Array<[keyof TrainTensors, string]>) {
    for (const [name, t] of tensors[group])
      out.set(`${prefix}/${name}`, { dtype: 'F32', shape: t.shape, data: (await t.data()) as Float32Array });
  }
  writeSafetensors(path, out, { format: FORMAT, progress: JSON.stringify(progress), config: JSON.stringify(config) });
}

/** Where `snapshotEvery` keeps the EMA weights of step `step`: snapshots/step-000400.safetensors. */
export function snapshotPath(runDir: string, step: number): string {
  return join(runDir, 'snapshots', `step-${String(step).padStart(6, '0')}.safetensors`);
}

/** The run's snapshots (EMA weights only), oldest first. */
export function listSnapshots(runDir: string): Array<{ step: number; path: string }> {
  const dir = join(runDir, 'snapshots');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => /^step-(\d+)\.safetensors$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

export interface LoadedCheckpoint {
  progress: TrainProgress;
  config: TrainConfig;
  values: Record<keyof TrainTensors, Map<string, Float32Array>>;
  shapes: Map<string, number[]>;
}

/** Opens a training checkpoint file, checking that it exists and is of this format. */
function openCheckpoint(path: string): SafetensorsFile {
  if (!existsSync(path)) throw new CheckpointError(`no checkpoint at ${path}`, { code: 'CHECKPOINT_MISSING' });
  const file = SafetensorsFile.open(path);
  if (file.metadata.format !== FORMAT) {
    file.close();
    throw new CheckpointError(
      `${path} is not a training checkpoint of this version (format ${file.metadata.format ?? 'missing'})`,
    );
  }
  return file;
}

/** Which tensors `loadCheckpoint` reads: some groups, and within them some names (default: all). */
export interface LoadSelection {
  groups?: Array<keyof TrainTensors>;
  /** Parameter names to read; others in the file (unused by the model being built) are never read. */
  names?: ReadonlySet<string>;
}

/**
 * Reads a checkpoint written by `saveCheckpoint`: only the tensors selected (sampling needs the
 * EMA weights alone, not the optimizer state), each verified against its stored checksum.
 */
export function loadCheckpoint(path: string, select: LoadSelection = {}): LoadedCheckpoint {
  const file = openCheckpoint(path);
  try {
    const values = {
      params: new Map(),
      ema: new Map(),
      adamM: new Map(),
      adamV: new Map(),
    } as LoadedCheckpoint['values'];
    const shapes = new Map<string, number[]>();
    const groups = select.groups ?? (Object.keys(GROUPS) as Array<keyof TrainTensors>);
    for (const key of file.names) {
      const slash = key.indexOf('/');
      const group = groups.find((g) => GROUPS[g] === key.slice(0, slash));
      const name = key.slice(slash + 1);
      if (!group || (select.names && !select.names.has(name))) continue;
      const entry = file.read(key);
      values[group].set(name, toFloat32(entry.data));
      shapes.set(name, entry.shape);
    }
    return { progress: parseMetadata(file, 'progress'), config: parseMetadata(file, 'config'), values, shapes };
  } finally {
    file.close();
  }
}

/**
 * The tensors holding NaN or ±Inf, with how many of their values are: weights that would sample
 * noise (a diverged run, a damaged file), to refuse or warn about before any work.
 */
export function nonFiniteTensors(
  values: Map<string, Float32Array>,
): Array<{ name: string; count: number; size: number }> {
  const found: Array<{ name: string; count: number; size: number }> = [];
  for (const [name, v] of values) {
    let count = 0;
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) count++;
    if (count > 0) found.push({ name, count, size: v.length });
  }
  return found;
}

/** A JSON metadata field of a checkpoint, or a CheckpointError naming the file and the field. */
function parseMetadata<T>(file: SafetensorsFile, field: 'progress' | 'config'): T {
  const text = file.metadata[field];
  if (text === undefined) throw new CheckpointError(`${file.path}: the header has no '${field}'`);
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new CheckpointError(`${file.path}: the header's '${field}' is not valid JSON (${(error as Error).message})`);
  }
}

/**
 * A checkpoint's progress and config without its tensors (the header only): what a program needs
 * before it starts a backend.
 */
export function readCheckpointInfo(path: string): { progress: TrainProgress; config: TrainConfig } {
  const file = openCheckpoint(path);
  try {
    return { progress: parseMetadata(file, 'progress'), config: parseMetadata(file, 'config') };
  } finally {
    file.close();
  }
}
