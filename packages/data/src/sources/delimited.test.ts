import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_RECORD, readDelimited, readHeader } from './delimited.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-delimited-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

async function rows(
  path: string,
  delimiter: ',' | '\t' = ',',
  start = 0,
): Promise<Array<{ offset: number; fields: string[]; malformed?: boolean }>> {
  const out = [];
  for await (const row of readDelimited(path, delimiter, start))
    out.push({
      offset: row.offset,
      fields: row.fields.map((f) => new TextDecoder().decode(f)),
      ...(row.malformed ? { malformed: true } : {}),
    });
  return out;
}

const fields = (r: Awaited<ReturnType<typeof rows>>) => r.map((x) => (x.malformed ? 'MALFORMED' : x.fields));

describe('readDelimited', () => {
  it(
    'reads RFC 4180 quoting: delimiters, quotes and newlines inside quoted fields; ' + 'CRLF; blank lines skipped',
    async () => {
      const csv =
        'videoid,name\r\n1,"a, b"\r\n\r\n2,"say ""hi""\nnext line"\n3,plain "quote" inside\n4,last-no-newline';
      expect(fields(await rows(file('q.csv', csv)))).toEqual([
        ['videoid', 'name'],
        ['1', 'a, b'],
        ['2', 'say "hi"\nnext line'],
        ['3', 'plain "quote" inside'],
        ['4', 'last-no-newline'],
      ]);
    },
  );

  it('reads tab-separated files the way pandas writes them, tabs in captions quoted', async () => {
    const tsv = 'tar\tfile\tcaption\t\nx.tar\t1.jpg\t"a\tb"\n';
    expect(fields(await rows(file('t.tsv', tsv), '\t'))).toEqual([
      ['tar', 'file', 'caption', ''],
      ['x.tar', '1.jpg', 'a\tb'],
    ]);
  });

  it('gives offsets from which reading resumes at that record', async () => {
    const csv = 'h1,h2\n"multi\nline",x\n\nb,y\nc,z\n';
    const all = await rows(file('o.csv', csv));
    for (const [k, row] of all.entries())
      expect(fields(await rows(join(dir, 'o.csv'), ',', row.offset))).toEqual(fields(all.slice(k)));
  });

  it('drops a UTF-8 byte-order mark and keeps bytes that are not UTF-8 for the caller to judge', async () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('a,b\n1,'), 0xe9, 0x0a]);
    const path = file('bom.csv', bytes);
    expect((await readHeader(path, ','))?.names).toEqual(['a', 'b']);
    const records = [];
    for await (const r of readDelimited(path, ',')) records.push(r);
    expect(Array.from(records[1].fields[1])).toEqual([0xe9]);
  });

  it('flags an unterminated quote and a record over MAX_RECORD, and goes on after the next line break', async () => {
    const unterminated = await rows(file('u.csv', 'a,b\n1,"never closed\n2,fine\n'));
    // The open quote runs to the end of the file: one malformed record, resuming after its first line.
    expect(fields(unterminated)).toEqual([['a', 'b'], 'MALFORMED', ['2', 'fine']]);
    const long = `a,b\n1,"${'x'.repeat(MAX_RECORD + 10)}"\n2,fine\n`;
    expect(fields(await rows(file('long.csv', long)))).toEqual([['a', 'b'], 'MALFORMED', ['2', 'fine']]);
    expect(fields(await rows(file('after-quote.csv', 'a,b\n1,"x"y\n2,z\n')))).toEqual([
      ['a', 'b'],
      'MALFORMED',
      ['2', 'z'],
    ]);
  });

  it('reads many records across read chunks', async () => {
    const lines = ['id,caption'];
    for (let i = 0; i < 60_000; i++) lines.push(`${i},"caption number ${i}, with a comma"`);
    const all = await rows(file('many.csv', `${lines.join('\n')}\n`));
    expect(all).toHaveLength(60_001);
    expect(all[59_999].fields).toEqual(['59998', 'caption number 59998, with a comma']);
  });
});
