import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@matryoshka-ts/core';
import { countParams, preset, resolveConfig } from '@matryoshka-ts/nested-unet';
import { type TrainConfigInput, modelConfigOf, parseTrainConfig } from './config.js';
import {
  COPIES_PER_PARAMETER,
  MAX_TENSOR_ELEMENTS,
  checkTensorSizes,
  checkTrainingMemory,
  formatBytes,
  memoryPlan,
} from './memory-plan.js';
import { TRAIN_PRESETS } from './train-presets.js';

const GB = 1e9;
const parse = (input: TrainConfigInput) => {
  const config = parseTrainConfig(input);
  return { config, model: modelConfigOf(config) };
};

/** A run of a model preset on streamed data: one phase at its top level. */
function presetRun(name: string, batchSize: number) {
  const top = resolveConfig(preset(name)).levels[0];
  return parse({
    model: name,
    data: { source: 'webvid', path: '/data/webvid.csv', videos: '/data/videos' },
    phases: [{ resolution: top.resolution, frames: top.frames, batchSize, steps: 1 }],
  });
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).not.toContain('\n');
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('memoryPlan', () => {
  it('counts every parameter of each phase model five times, in float32', () => {
    const { config, model } = parse(TRAIN_PRESETS.emoji);
    const plan = memoryPlan(config, model);
    expect(plan.phases).toHaveLength(3);
    const last = plan.phases[2];
    expect(last.params).toBe(countParams(model).total);
    expect(last.paramBytes).toBe(last.params * 4 * COPIES_PER_PARAMETER);
    expect(plan.phases[0].params).toBeLessThan(plan.phases[1].params);
    expect(last.totalBytes).toBe(last.paramBytes + last.activationBytes);
    expect(plan.peak.totalBytes).toBe(Math.max(...plan.phases.map((p) => p.totalBytes)));
  });

  it('grows the activations linearly with the batch and about with resolution²', () => {
    const at = (batchSize: number) =>
      memoryPlan(
        parse({ ...TRAIN_PRESETS['simple-tiny'], phases: [{ resolution: 16, batchSize, steps: 1 }] }).config,
        parse(TRAIN_PRESETS['simple-tiny']).model,
      ).peak.activationBytes;
    expect(at(8)).toBeCloseTo(2 * at(4), 0);
    const small = presetRun('MDM-S64', 1);
    const nested = presetRun('MDM-S64S256', 1);
    const s64 = memoryPlan(small.config, small.model).peak.activationBytes;
    const s256 = memoryPlan(nested.config, nested.model).peak.activationBytes;
    // The 256 px level (far fewer channels) adds less than the 16× its pixels would suggest.
    expect(s256).toBeGreaterThan(1.2 * s64);
    expect(s256).toBeLessThan(16 * s64);
  });

  it('the default presets fit comfortably on a 24 GB machine', () => {
    for (const name of ['emoji', 'tiny', 'micro', 'video-tiny']) {
      const { config, model } = parse(TRAIN_PRESETS[name]);
      const plan = checkTrainingMemory(config, model, { machineBytes: 24 * GB, backend: 'wasm' });
      expect(plan.peak.totalBytes, name).toBeLessThan(1 * GB);
    }
  });

  it('estimates the paper-sized models in a plausible range', () => {
    const range = (name: string, batch: number) => {
      const { config, model } = presetRun(name, batch);
      return memoryPlan(config, model).peak;
    };
    // MDM-S64: 436 M parameters, 8.7 GB of parameter state; a 64 px batch of 8 adds some 10 GB.
    const s64 = range('MDM-S64', 8);
    expect(s64.params).toBe(countParams(presetRun('MDM-S64', 8).model).total);
    expect(s64.paramBytes / GB).toBeCloseTo(8.7, 1);
    expect(s64.totalBytes / GB).toBeGreaterThan(12);
    expect(s64.totalBytes / GB).toBeLessThan(40);
    // cc12m-1024: a 1024 px batch of 8 is dominated by its outer level's activations.
    const cc = range('cc12m-1024', 8);
    expect(cc.activationBytes).toBeGreaterThan(cc.paramBytes);
    expect(cc.totalBytes / GB).toBeGreaterThan(40);
    expect(cc.totalBytes / GB).toBeLessThan(300);
    // The 16-frame video model at batch 1 needs more than the image model at batch 8.
    expect(range('MDM-S64T16', 1).totalBytes).toBeGreaterThan(s64.totalBytes);
  });
});

describe('checkTrainingMemory', () => {
  it('refuses a step larger than the machine, naming the fields and both sizes', () => {
    const { config, model } = parse({
      ...TRAIN_PRESETS.emoji,
      phases: [...(TRAIN_PRESETS.emoji.phases ?? []).slice(0, 2), { resolution: 64, batchSize: 4096, steps: 1 }],
    });
    const message = configError(() => checkTrainingMemory(config, model, { machineBytes: 24 * GB, backend: 'wasm' }));
    expect(message).toMatch(/^config: phase 3 needs about [\d.]+ GB of memory, more than this machine's 24 GB: /);
    expect(message).toMatch(/driven by phases\.2\.batchSize = 4096 \(with model\.resolution 64, .*\): lower phases\.2/);
    expect(() => checkTrainingMemory(config, model, { machineBytes: 1e15, backend: 'wasm' })).not.toThrow();
  });

  it("names the model's size when the parameters dominate", () => {
    const { config, model } = presetRun('MDM-S64', 1);
    const message = configError(() => checkTrainingMemory(config, model, { machineBytes: 8 * GB, backend: 'wasm' }));
    expect(message).toMatch(/^config: model preset MDM-S64: phase 1 needs about 10\.\d GB of memory, /);
    expect(message).toMatch(/more than this machine's 8 GB: parameters 434 M × 5 .* = 8\.\d+ GB, activations /);
    expect(message).toMatch(/driven by model\.channels \[256, 512, 768\] \(the 64 px level holds 434 M parameters\)/);
  });

  it('bounds activations by the typed-array limit except on libtensorflow', () => {
    // MDM-S64T16S256 at batch 8: its 256 px level runs on 8 × 16 frames ([128, 256, 256, 192]: 6.4 GB).
    const { config, model } = presetRun('MDM-S64T16S256', 8);
    expect(configError(() => checkTrainingMemory(config, model, { machineBytes: 1e15, backend: 'wasm' }))).toMatch(
      /model\.resolution = 256 .* needs a 6\.44 GB tensor \[128, 256, 256, 192\] .*the wasm backend holds at most/,
    );
    expect(() => checkTrainingMemory(config, model, { machineBytes: 1e15, backend: 'tensorflow' })).not.toThrow();
    // Parsing never bounds activations: a bigger machine or another backend may run it.
    expect(() => checkTensorSizes(config, model)).not.toThrow();
  });
});

describe('checkTensorSizes', () => {
  it('bounds data batches and parameters by MAX_TENSOR_ELEMENTS', () => {
    const micro = TRAIN_PRESETS.micro;
    const { config, model } = parse({ ...micro, phases: [{ resolution: 8, batchSize: 2000, steps: 1 }] });
    const plan = checkTensorSizes(config, model);
    const { largestInput, largestParam } = plan.phases[0];
    expect(largestInput.shape).toEqual([2000, 8, 8, 3]);
    expect(largestInput.elements).toBeGreaterThan(largestParam.elements);
    expect(configError(() => checkTensorSizes(config, model, { maxElements: largestParam.elements }))).toMatch(
      /^config: phases\.0\.batchSize = 2000 .*needs a 1\.54 MB tensor \[2000, 8, 8, 3\] .*data batch of the 8 px level/,
    );
    expect(MAX_TENSOR_ELEMENTS).toBeGreaterThanOrEqual(2 ** 30);
  });
});

describe('formatBytes', () => {
  it('writes decimal units as the system reports memory', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(6_730_000)).toBe('6.73 MB');
    expect(formatBytes(2 ** 32)).toBe('4.29 GB');
    expect(formatBytes(24e9)).toBe('24 GB');
    expect(formatBytes(95.2e9)).toBe('95.2 GB');
    expect(formatBytes(1.5e12)).toBe('1.5 TB');
    expect(formatBytes(768e9)).toBe('768 GB');
  });
});

describe('a multi-stage run', () => {
  it('checks every stage before the first starts: nothing is trained or written', async () => {
    const { initBackend } = await import('@matryoshka-ts/backends');
    const { trainRun } = await import('./train-run.js');
    await initBackend({ backend: 'cpu', quiet: true });
    const input = structuredClone(TRAIN_PRESETS['cascaded-tiny']) as {
      model: { stages: Array<{ phases: Array<{ batchSize: number }> }> };
    };
    // The 16 px upsampler's activations ([200000, 16, 16, 32] floats) exceed what one array holds.
    input.model.stages[1].phases[0].batchSize = 200_000;
    const config = parseTrainConfig({ ...(input as TrainConfigInput), backend: 'cpu' });
    const out = join(mkdtempSync(join(tmpdir(), 'mdm-memory-')), 'run');
    await expect(trainRun(config, { out })).rejects.toThrow(ConfigError);
    await expect(trainRun(config, { out })).rejects.toThrow(/^stage upsampler-16: .*batchSize 200000/);
    expect(existsSync(out)).toBe(false);
  });
});
