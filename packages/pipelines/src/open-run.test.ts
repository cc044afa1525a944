import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { SafetensorsError, SafetensorsFile, readSafetensors, writeSafetensors } from '@matryoshka-ts/checkpoint';
import { CheckpointError } from '@matryoshka-ts/core';
import { parseTrainConfig } from './config.js';
import { openRun } from './open-run.js';
import { loadCheckpoint, nonFiniteTensors } from './run-checkpoint.js';
import { TRAIN_PRESETS } from './train-presets.js';
import { train } from './train.js';

const root = mkdtempSync(join(tmpdir(), 'mdm-open-run-'));
const trained = join(root, 'trained');
let n = 0;

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
  await train(parseTrainConfig({ ...TRAIN_PRESETS.micro, backend: 'cpu' }), { out: trained, steps: 4 });
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A copy of the trained checkpoint with `edit` applied to its tensors (metadata kept). */
function variant(edit: (tensors: ReturnType<typeof readSafetensors>['tensors']) => void): string {
  const { tensors, metadata } = readSafetensors(join(trained, 'checkpoint.safetensors'));
  edit(tensors);
  const path = join(root, `variant-${n++}.safetensors`);
  writeSafetensors(path, tensors as never, metadata);
  return path;
}

/** Flips one bit inside a tensor's stored bytes (its checksum now disagrees). */
function corrupt(path: string, tensor: string): void {
  const file = SafetensorsFile.open(path);
  const at = file.info(tensor).begin;
  file.close();
  const bytes = readFileSync(path);
  bytes[at] ^= 0x04;
  writeFileSync(path, bytes);
}

describe('opening a run reads only what sampling needs, and refuses broken weights', () => {
  it('never reads optimizer state or tensors the model does not use; resuming reads and verifies all', async () => {
    const path = variant((t) => {
      t.set('ema/unused.weight', { dtype: 'F32', shape: [64], data: new Float32Array(64) });
    });
    const names = SafetensorsFile.open(path);
    const adam = names.names.find((k) => k.startsWith('adam.m/'))!;
    names.close();
    corrupt(path, 'ema/unused.weight');
    corrupt(path, adam);
    const run = await openRun(path);
    expect(run.paramCount).toBeGreaterThan(0);
    run.dispose();
    expect(() => loadCheckpoint(path)).toThrow(SafetensorsError);
    expect(() => loadCheckpoint(path)).toThrow(new RegExp(`${path}: tensor '(ema/unused.weight|${adam})': checksum`));
  });

  it('refuses a changed EMA weight, naming the file and the tensor', async () => {
    const path = variant(() => {});
    const first = SafetensorsFile.open(path);
    const ema = first.names.find((k) => k.startsWith('ema/'))!;
    first.close();
    corrupt(path, ema);
    await expect(openRun(path)).rejects.toThrow(`${path}: tensor '${ema}': checksum mismatch`);
  });

  it('refuses weights holding NaN or Inf, naming the tensor, unless asked to go on', async () => {
    let broken = '';
    const path = variant((t) => {
      broken = [...t.keys()].find((k) => k.startsWith('ema/') && k.endsWith('.weight'))!;
      const data = Float32Array.from(t.get(broken)!.data as Float32Array);
      data[0] = Number.NaN;
      data[1] = Number.POSITIVE_INFINITY;
      t.set(broken, { ...t.get(broken)!, data });
    });
    const refused = openRun(path);
    await expect(refused).rejects.toThrow(CheckpointError);
    await expect(openRun(path)).rejects.toThrow(
      new RegExp(
        `1 weight tensor holds NaN or Inf: '${broken.replace('.', '\\.')}' \\(2 of \\d+ values\\).*--allow-nonfinite`,
      ),
    );
    const run = await openRun(path, { allowNonFinite: true });
    run.dispose();
  });

  it('nonFiniteTensors counts NaN and both infinities, and nothing else', () => {
    const values = new Map([
      ['a', new Float32Array([0, -0, 3.4e38, -1e-45])],
      ['b', new Float32Array([Number.NaN, 1, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY])],
    ]);
    expect(nonFiniteTensors(values)).toEqual([{ name: 'b', count: 3, size: 4 }]);
  });
});
