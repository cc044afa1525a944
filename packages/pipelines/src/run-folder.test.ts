import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, WriteError } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { parseTrainConfig } from './config.js';
import { checkProgress, prepareFreshRunFolder } from './run-folder.js';
import type { TrainProgress } from './run-checkpoint.js';
import { RunLog, type StepMetrics } from './run-log.js';
import { TRAIN_PRESETS } from './train-presets.js';
import { train } from './train.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const root = mkdtempSync(join(tmpdir(), 'mdm-run-folder-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const folder = () => join(root, `run${n++}`);
const micro = parseTrainConfig({ ...TRAIN_PRESETS.micro, backend: 'cpu' });
const rows = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as StepMetrics);

describe('a fresh run never writes over another run', () => {
  it('refuses a folder holding a run, naming --resume and --force; --force moves the old run aside', () => {
    const out = folder();
    expect(prepareFreshRunFolder(out)).toBeUndefined();
    expect(existsSync(out)).toBe(true);
    writeFileSync(join(out, 'metrics.jsonl'), '{"step":1}\n');
    writeFileSync(join(out, 'notes.txt'), 'mine');
    expect(() => prepareFreshRunFolder(out)).toThrow(ConfigError);
    expect(() => prepareFreshRunFolder(out)).toThrow(
      new RegExp(`${out} already holds a run \\(metrics.jsonl\\): continue it with --resume .*--force`),
    );
    const aside = prepareFreshRunFolder(out, true, new Date('2026-12-07T01:02:03.456Z'));
    expect(aside).toBe(`${out}.replaced-20261207T010203Z`);
    expect(readFileSync(join(aside!, 'metrics.jsonl'), 'utf8')).toBe('{"step":1}\n');
    expect(readFileSync(join(aside!, 'notes.txt'), 'utf8')).toBe('mine');
    expect(readdirSync(out)).toEqual([]);
    // A second replacement at the same second gets its own name.
    writeFileSync(join(out, 'checkpoint.safetensors'), 'x');
    expect(prepareFreshRunFolder(out, true, new Date('2026-12-07T01:02:03Z'))).toBe(`${aside}-2`);
  });

  it('train() into a trained run without resume is refused and the run is untouched', async () => {
    const out = folder();
    await train(micro, { out, steps: 2 });
    const before = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    const checkpoint = readFileSync(join(out, 'checkpoint.safetensors'));
    await expect(train(micro, { out, steps: 1 })).rejects.toThrow(/already holds a run/);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).toBe(before);
    expect(readFileSync(join(out, 'checkpoint.safetensors')).equals(checkpoint)).toBe(true);
  }, 120_000);
});

describe('resuming: the checkpoint is the truth', () => {
  it('a torn last line of metrics.jsonl is dropped and set aside, and the run resumes exactly', async () => {
    const whole = folder();
    await train(micro, { out: whole, steps: 4 });
    const split = folder();
    await train(micro, { out: split, steps: 2 });
    // A write cut off by a full disk: half a JSON object and no newline.
    appendFileSync(join(split, 'metrics.jsonl'), '{"step":3,"phase":0,"resolut');
    await train(micro, { out: split, resume: true, steps: 4 });
    expect(rows(split).map((m) => [m.step, m.loss])).toEqual(rows(whole).map((m) => [m.step, m.loss]));
    expect(readFileSync(join(split, 'metrics.jsonl.torn'), 'utf8')).toMatch(/"resolut$/);
  }, 240_000);

  it('RunLog names the unreadable lines, and a failed append names the file', () => {
    const out = folder();
    mkdirSync(out);
    writeFileSync(join(out, 'metrics.jsonl'), '{"step":1,"loss":1}\nnot json\n{"step":2,"loss":2}\n{"step":9,"loss":');
    const notes: string[] = [];
    const log = new RunLog(out, 5, (line) => notes.push(line));
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/2 unreadable lines \(line 2, 4: a torn write\); dropped.*metrics\.jsonl\.torn/);
    expect(rows(out).map((m) => m.step)).toEqual([1, 2]);
    // A file that cannot be appended to (here a folder in its place; a full disk alike).
    rmSync(join(out, 'metrics.jsonl'));
    mkdirSync(join(out, 'metrics.jsonl'));
    const metrics = { step: 3, phase: 0, resolution: 8, loss: 1, mse: [1], lr: 0, gradNorm: 0, stepsPerSec: 1 };
    expect(() => log.append(metrics)).toThrow(WriteError);
    expect(() => log.append(metrics)).toThrow(new RegExp(`cannot write ${join(out, 'metrics.jsonl')}: `));
  });

  it('a checkpoint whose progress is impossible is refused, naming the file and the field', () => {
    const good: TrainProgress = {
      step: 10,
      phase: 1,
      phaseStep: 4,
      rng: { s: [1, 2, 3, 4] } as never,
      data: { epoch: 0, cursor: 40 },
      adamStep: 4,
      emaUpdates: 4,
      badInARow: 0,
      badTotal: 0,
    };
    expect(() => checkProgress(good, 2, 'ckpt')).not.toThrow();
    const bad = (change: Partial<TrainProgress>, pattern: RegExp) => {
      expect(() => checkProgress({ ...good, ...change }, 2, 'ckpt')).toThrow(CheckpointError);
      expect(() => checkProgress({ ...good, ...change }, 2, 'ckpt')).toThrow(pattern);
    };
    bad({ step: -20 }, /^ckpt: progress\.step is -20: expected a non-negative integer$/);
    bad({ phase: 2 }, /progress\.phase is 2: the run has 2 phases/);
    bad({ phaseStep: 11 }, /progress\.phaseStep is 11: more than progress\.step \(10\)/);
    bad({ data: { epoch: 0, cursor: 1.5 } }, /progress\.data\.cursor is 1\.5/);
    bad({ adamStep: Number.NaN }, /progress\.adamStep is null/);
  });
});
