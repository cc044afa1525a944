import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WriteError } from '@matryoshka-ts/core';
import { writeRunFile, writeRunFileAtomic } from './run-files.js';
import { RunLog } from './run-log.js';

describe('run files', () => {
  it('a failed write is a one-line WriteError naming the file (Node only says "…, write")', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mdm-run-files-'));
    mkdirSync(join(dir, 'samples.png')); // a directory where the file should go: EISDIR
    const write = () => writeRunFile(join(dir, 'samples.png'), new Uint8Array(4));
    expect(write).toThrow(WriteError);
    expect(write).toThrow(new RegExp(`^cannot write ${join(dir, 'samples.png')}: .*EISDIR[^\\n]*$`));
    // loss.svg goes through it too: RunLog.plot was the last bare writeFileSync of a run's files.
    mkdirSync(join(dir, 'loss.svg'));
    const log = new RunLog(dir);
    log.append({ step: 1, phase: 0, resolution: 8, loss: 0.5, mse: [0.5], lr: 1e-3, gradNorm: 1, stepsPerSec: 1 });
    expect(() => log.plot()).toThrow(/^cannot write .*loss\.svg: /);
  });

  it('an atomic write that fails leaves the old file as it was and names the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mdm-run-files-'));
    const path = join(dir, 'run.json');
    writeRunFileAtomic(path, '{"old": true}\n');
    mkdirSync(`${path}.tmp`); // the temporary name is taken by a directory: the write fails there
    const write = () => writeRunFileAtomic(path, '{"new": true}\n');
    expect(write).toThrow(WriteError);
    expect(write).toThrow(/^cannot write .*run\.json\.tmp: /);
    expect(readFileSync(path, 'utf8')).toBe('{"old": true}\n');
    writeFileSync(join(dir, 'other'), '');
    expect(readdirSync(dir).sort()).toEqual(['other', 'run.json', 'run.json.tmp']);
  });
});
