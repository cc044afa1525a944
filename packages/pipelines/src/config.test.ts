import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@matryoshka-ts/core';
import { type TrainConfigInput, applyOverride, parseTrainConfig } from './config.js';
import { readConfigFile } from './config-file.js';
import { jsonSyntaxError } from './json-position.js';
import { TRAIN_PRESETS } from './train-presets.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

/** The ConfigError `fn` throws: one line (no stack in the message, nothing after a newline). */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected a ConfigError');
}

describe('readConfigFile', () => {
  it('names the file, line and column of a JSON syntax error', () => {
    const path = file('bad.json', '{"model": "micro",\n  "phases": [1,}\n');
    expect(configError(() => readConfigFile(path))).toBe(
      `${path}: invalid JSON at line 2, column 16: unexpected '}' (expected a value)`,
    );
    const trailing = file('trailing.json', '{\n  "seed": 1,\n}');
    expect(configError(() => readConfigFile(trailing))).toMatch(
      /trailing\.json: invalid JSON at line 3, column 1: a comma before '}'/,
    );
    const cut = file('cut.json', '{"seed": 1');
    expect(configError(() => readConfigFile(cut))).toMatch(
      /cut\.json: invalid JSON at line 1, column 11: .*end of file/,
    );
    const empty = file('empty.json', '');
    expect(configError(() => readConfigFile(empty))).toMatch(/empty\.json: invalid JSON at line 1, column 1/);
  });

  it('names the file, line and column of a YAML syntax error, on one line', () => {
    const path = file('bad.yaml', 'model: micro\nphases: [a\nseed: 1\n');
    expect(configError(() => readConfigFile(path))).toMatch(
      new RegExp(`^${path.replace(/[.\\/]/g, '\\$&')}: invalid YAML at line \\d+, column \\d+: [a-z]`),
    );
    const indent = file('indent.yml', 'seed: 1\n  steps: 2\n');
    expect(configError(() => readConfigFile(indent))).toMatch(/indent\.yml: invalid YAML at line \d+, column \d+: /);
  });

  it('names the file when it parses to something other than an object', () => {
    expect(configError(() => readConfigFile(file('list.json', '[1, 2]')))).toMatch(
      /list\.json: a config file must hold an object .* holds a list \(2 entries\)/,
    );
    expect(configError(() => readConfigFile(file('word.yaml', 'hello\n')))).toMatch(
      /word\.yaml: a config file must hold an object .* holds a string \("hello"\)/,
    );
    expect(configError(() => readConfigFile(file('number.json', '42')))).toMatch(/number\.json: .* holds a number/);
    expect(configError(() => readConfigFile(file('blank.yaml', '')))).toMatch(/blank\.yaml: .* holds nothing/);
    expect(configError(() => readConfigFile(join(dir, 'missing.yaml')))).toMatch(
      /missing\.yaml: cannot read the config file: no such file \(ENOENT\)/,
    );
  });

  it('reads JSON (with a byte-order mark) and YAML objects', () => {
    expect(readConfigFile(file('ok.json', '\uFEFF{"seed": 3}'))).toEqual({ seed: 3 });
    expect(readConfigFile(file('ok.yaml', 'seed: 3\nphases:\n  - {resolution: 8}\n'))).toEqual({
      seed: 3,
      phases: [{ resolution: 8 }],
    });
  });
});

describe('jsonSyntaxError', () => {
  it('accepts exactly what JSON.parse accepts', () => {
    const samples = [
      '{}',
      '[]',
      ' {"a": [1, -2.5e3, 0, true, false, null, "x\\"\\u00e9\\n"], "b": {"c": {}}}\n',
      '"s"',
      '0',
      '-0.5E+2',
      '{"a":1,}',
      '[1,]',
      '[01]',
      '{a: 1}',
      "{'a': 1}",
      '[1 2]',
      '"\\x"',
      '"\\u12"',
      '"tab\there"',
      '[1.]',
      '[.5]',
      '[-]',
      'nul',
      '{"a" 1}',
      '[1]x',
      '',
      '   ',
      '{"a":1}}',
      '[NaN]',
    ];
    for (const text of samples) {
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      expect(jsonSyntaxError(text) === undefined, text).toBe(valid);
    }
  });

  it('counts lines and columns from 1', () => {
    expect(jsonSyntaxError('{\n  "a": 1\n  "b": 2\n}')).toMatchObject({ line: 3, column: 3 });
    expect(jsonSyntaxError('[1,\n\n x]')).toMatchObject({ line: 3, column: 2 });
  });
});

describe('applyOverride (--set)', () => {
  const set = (assignment: string, target: Record<string, unknown> = { phases: [{ steps: 1 }] }) => {
    applyOverride(target, assignment);
    return target;
  };

  it('sets JSON values, and plain text as a string', () => {
    expect(set('optimizer.lr=2e-4')).toMatchObject({ optimizer: { lr: 2e-4 } });
    expect(set('phases.0.batchSize=8')).toMatchObject({ phases: [{ steps: 1, batchSize: 8 }] });
    expect(set('phases.1.steps=5')).toMatchObject({ phases: [{ steps: 1 }, { steps: 5 }] });
    expect(set('model.channels=[64,128]')).toMatchObject({ model: { channels: [64, 128] } });
    expect(set('data.path=/data/cc12m/{00000..00010}.tar')).toMatchObject({
      data: { path: '/data/cc12m/{00000..00010}.tar' },
    });
    expect(set('schedule.name=cosine-shift4')).toMatchObject({ schedule: { name: 'cosine-shift4' } });
    expect(set('data.flip=true')).toMatchObject({ data: { flip: true } });
  });

  it('names the key of a malformed value or key', () => {
    expect(configError(() => set('model.channels=[100000,16'))).toBe(
      '--set model.channels: the value [100000,16 is not valid JSON: at column 11, unexpected end of file ' +
        "(expected ',' or ']' after a list entry)",
    );
    expect(configError(() => set('conditioning.encoder={kind: "onnx"}'))).toMatch(
      /^--set conditioning\.encoder: the value .* is not valid JSON: at column 2, /,
    );
    expect(configError(() => set('phases.x.steps=3'))).toMatch(/^--set phases\.x\.steps: phases is a list; 'x' is not/);
    expect(configError(() => set('phases.4.steps=3'))).toMatch(
      /^--set phases\.4\.steps: phases has 1 entries; index 4/,
    );
    expect(configError(() => set('phases..steps=3'))).toMatch(/^--set phases\.\.steps: empty key/);
    expect(configError(() => set('=3'))).toMatch(/^--set expects key=value/);
  });

  it('a value of the wrong type is named by the config check, with the value', () => {
    const raw = structuredClone(TRAIN_PRESETS.micro) as Record<string, unknown>;
    applyOverride(raw, 'phases.0.batchSize=12abc');
    expect(configError(() => parseTrainConfig(raw as TrainConfigInput))).toMatch(
      /^config: phases\.0\.batchSize: .*expected number, received string \(got "12abc"\)$/,
    );
  });
});

describe('loss weighting', () => {
  it('takes loss.minSnrGamma (off by default) and refuses it together with loss.vdmWeights', () => {
    const micro = TRAIN_PRESETS.micro;
    expect(parseTrainConfig(micro).loss.minSnrGamma).toBeUndefined();
    expect(parseTrainConfig({ ...micro, loss: { minSnrGamma: 5 } }).loss.minSnrGamma).toBe(5);
    expect(configError(() => parseTrainConfig({ ...micro, loss: { minSnrGamma: 0 } }))).toMatch(
      /^config: loss\.minSnrGamma: /,
    );
    expect(configError(() => parseTrainConfig({ ...micro, loss: { minSnrGamma: 5, vdmWeights: true } }))).toMatch(
      /loss\.vdmWeights and loss\.minSnrGamma are two weightings of the same sum: choose one/,
    );
  });
});

describe('parseTrainConfig sizes', () => {
  const micro = TRAIN_PRESETS.micro;
  const withBatch = (batchSize: number): TrainConfigInput => ({
    ...micro,
    phases: [{ resolution: 4, batchSize, steps: 1 }, ...(micro.phases ?? []).slice(1)],
  });

  it('refuses a batch size that is not a positive integer, naming it and the value', () => {
    expect(configError(() => parseTrainConfig(withBatch(1.5)))).toMatch(
      /^config: phases\.0\.batchSize: .*\(got 1\.5\)/,
    );
    expect(configError(() => parseTrainConfig(withBatch(0)))).toMatch(/^config: phases\.0\.batchSize: .*\(got 0\)/);
    expect(configError(() => parseTrainConfig(withBatch(-3)))).toMatch(/^config: phases\.0\.batchSize: .*\(got -3\)/);
  });

  it('refuses a batch no tensor can hold, naming the field and the size, instead of a RangeError', () => {
    expect(configError(() => parseTrainConfig(withBatch(1e9)))).toMatch(
      /^config: phases\.0\.batchSize = 1000000000 \(with model\.inner\.resolution 4\) needs a 192 GB tensor/,
    );
    // The case: tiny at 1e9 (its 16 px data batch, 768,000,000,000 floats).
    const tiny = { ...TRAIN_PRESETS.tiny, phases: [{ resolution: 16, batchSize: 1e9, steps: 1 }] };
    expect(configError(() => parseTrainConfig(tiny))).toMatch(
      /phases\.0\.batchSize = 1000000000 .* needs a 3\.07 TB tensor \[1000000000, 16, 16, 3\].*at most 4\.29 GB/,
    );
  });

  it('refuses a resolution no tensor can hold, naming model.resolution', () => {
    const config: TrainConfigInput = {
      ...TRAIN_PRESETS['simple-tiny'],
      model: { kind: 'simple', resolution: 100_000, channels: [16, 32], resBlocks: [1, 1], groups: 8 },
      conditioning: { kind: 'none' },
      phases: [{ resolution: 100_000, batchSize: 4, steps: 1 }],
    };
    expect(configError(() => parseTrainConfig(config))).toMatch(
      /^config: model\.resolution = 100000 \(with phases\.0\.batchSize 4\) needs a 480 GB tensor/,
    );
  });

  it('refuses channels no parameter tensor can hold, naming model.channels[0]', () => {
    const model = { ...(micro.model as object), channels: [100_000, 16] };
    expect(configError(() => parseTrainConfig({ ...micro, model }))).toMatch(
      /^config: model\.channels\[0\] = 100000 needs a 720 GB tensor \[3, 3, 200000, 100000\] .*parameter/,
    );
    const inner = { ...(micro.model as { inner: object }).inner, channels: [32, 100_032] };
    expect(configError(() => parseTrainConfig({ ...micro, model: { ...(micro.model as object), inner } }))).toMatch(
      /^config: model\.inner\.channels\[1\] = 100032 needs a/,
    );
  });

  it('still parses the paper-sized presets (their memory is checked when training starts)', () => {
    for (const model of ['cc12m-1024', 'MDM-S64S128S256S512S1024', 'MDM-S64T16S256']) {
      const frames = model === 'MDM-S64T16S256' ? 16 : 1;
      const resolution = model === 'cc12m-1024' || model.endsWith('1024') ? 1024 : 256;
      const config = parseTrainConfig({
        model,
        data: { source: 'cc12m', path: '/data/shards' },
        phases: [{ resolution, frames, batchSize: 8, steps: 1 }],
      });
      expect(config.model).toBe(model);
    }
  });
});
