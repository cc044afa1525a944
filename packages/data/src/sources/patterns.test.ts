import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DataError, isUserError } from '@matryoshka-ts/core';
import { afterAll, describe, expect, it } from 'vitest';
import { expandSources, isDirectory, isFile, specId } from './patterns.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-patterns-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
for (let k = 0; k < 12; k++) writeFileSync(join(dir, `${String(k).padStart(5, '0')}.tar`), '');
writeFileSync(join(dir, 'README.md'), '');
mkdirSync(join(dir, 'sub'));
symlinkSync(join(dir, 'gone.tar'), join(dir, '99999.tar')); // dangling

const isTar = (p: string) => isFile(p) && p.endsWith('.tar');
const names = (paths: string[]) => paths.map((p) => p.slice(dir.length + 1));

describe('expandSources', () => {
  it(
    'expands numeric brace ranges (zero-padded, either direction), ' + 'alternatives, globs and comma lists in order',
    () => {
      expect(names(expandSources(join(dir, '{00009..00011}.tar'), isTar))).toEqual([
        '00009.tar',
        '00010.tar',
        '00011.tar',
      ]);
      expect(names(expandSources(join(dir, '{00001..00000}.tar'), isTar))).toEqual(['00001.tar', '00000.tar']);
      expect(names(expandSources(join(dir, '0000{3,1}.tar'), isTar))).toEqual(['00003.tar', '00001.tar']);
      expect(expandSources(join(dir, '*.tar'), isTar)).toHaveLength(12); // sorted; the dangling link is passed over
      expect(names(expandSources(`${join(dir, '00002.tar')}, ${join(dir, '0001*.tar')}`, isTar))).toEqual([
        '00002.tar',
        '00010.tar',
        '00011.tar',
      ]);
    },
  );

  it('passes over glob matches that are not accepted, but refuses a named one', () => {
    expect(names(expandSources(join(dir, '*'), isDirectory))).toEqual(['sub']);
    expect(() => expandSources(join(dir, 'README.md'), isTar, { what: '.tar file' })).toThrow(
      `not a .tar file: ${join(dir, 'README.md')}`,
    );
  });

  it('fails at start, naming the path, for a missing path, an empty pattern or an empty spec', () => {
    expect(() => expandSources(join(dir, '{00010..00012}.tar'), isTar)).toThrow(
      `no such file or directory: ${join(dir, '00012.tar')}`,
    );
    expect(() => expandSources(join(dir, '*.zip'), isTar, { what: '.tar file' })).toThrow(
      `pattern matches no .tar file: ${join(dir, '*.zip')}`,
    );
    expect(() => expandSources(join(dir, 'nope', '*.tar'), isTar)).toThrow(`no such directory: ${join(dir, 'nope')}`);
    expect(() => expandSources(join(dir, '*', 'x.tar'), isTar)).toThrow(
      "'*' is only supported in the last path component",
    );
    expect(() => expandSources(join(dir, '{a..b}.tar'), isTar)).toThrow('unsupported brace expression');
    expect(() => expandSources(' , ', isTar, { label: 'shard path' })).toThrow("no shard path given: ' , '");
  });

  it('throws a DataError (code DATA_INVALID), a user error, with the same message', () => {
    const missing = join(dir, 'nope', '*.tar');
    expect(() => expandSources(missing, isTar)).toThrow(DataError);
    expect(() => expandSources(missing, isTar)).toThrow(expect.objectContaining({ code: 'DATA_INVALID' }));
    expect(() => expandSources(missing, isTar)).toThrow(`no such directory: ${join(dir, 'nope')} (in ${missing})`);
    for (const spec of [join(dir, 'README.md'), join(dir, '{a..b}.tar'), ' , ', join(dir, '00099.tar')]) {
      let caught: unknown;
      try {
        expandSources(spec, isTar);
      } catch (error) {
        caught = error;
      }
      expect(isUserError(caught), spec).toBe(true);
      expect(caught).toMatchObject({ name: 'DataError', code: 'DATA_INVALID' });
    }
  });
});

describe('specId', () => {
  it('makes each comma-separated part absolute, leaving patterns unexpanded', () => {
    expect(specId('a/{0..3}.tar, /x/y')).toBe(`${resolve('a/{0..3}.tar')},/x/y`);
  });
});
