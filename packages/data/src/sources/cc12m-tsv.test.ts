import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '@matryoshka-ts/core';
import { tar } from '@matryoshka-ts/test-utils';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../decode.js';
import { cc12mTsvSource } from './cc12m-tsv.js';
import type { SampleRef, ShardedSource, SkipCounts } from './source.js';
import { readRange } from './tar.js';

// The layout ml-mdm's scrape_cc12m.py leaves: run from `work/`, it writes the index there and the
// tars and shard TSVs in `work/cc12m/`, with tar paths relative to `work/` ("cc12m/00000.tar").
const dir = mkdtempSync(join(tmpdir(), 'mdm-cc12m-'));
const work = join(dir, 'work');
const cc12m = join(work, 'cc12m');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const image = (red: number) =>
  sharp({ create: { width: 20, height: 20, channels: 3, background: { r: red, g: 0, b: 0 } } })
    .jpeg()
    .toBuffer();
const tsv = (...rows: Array<Array<string | Uint8Array>>) =>
  Buffer.concat(
    rows.map((r) =>
      Buffer.concat([...r.flatMap((f, k) => [Buffer.from(k ? '\t' : ''), Buffer.from(f)]), Buffer.from('\n')]),
    ),
  );

beforeAll(async () => {
  mkdirSync(cc12m, { recursive: true });
  writeFileSync(
    join(cc12m, '00000.tar'),
    tar([
      { name: '000000000.jpg', data: await image(10) },
      { name: '000000000.txt', data: 'unused by this reader' },
      { name: '000000001.jpg', data: await image(20) },
      { name: '000000002.jpg', data: await image(30) },
      { name: '000000003.jpg', data: await image(40) },
      { name: '000000004.jpg', data: new Uint8Array() },
    ]),
  );
  const kept = { name: '000010000.jpg', data: await image(50) };
  const second = tar([kept, { name: '000010001.jpg', data: await image(60) }]);
  const cut = tar([kept]).length - 1024 + 512 + 100; // 100 bytes into the second member's data
  writeFileSync(join(cc12m, '00001.tar'), second.subarray(0, cut));
  writeFileSync(
    join(cc12m, '00000.tsv'),
    Buffer.concat([
      tsv(['tar', 'file', 'caption']),
      tsv(['cc12m/00000.tar', '000000000.jpg', 'a dog on a beach']),
      // pandas quotes a caption holding a tab, a quote or a newline.
      tsv(['cc12m/00000.tar', '000000001.jpg', '"a ""quoted"" word,\ta tab\nand a newline"']),
      tsv(['cc12m/00000.tar', '000000002.jpg', new Uint8Array([0x63, 0x61, 0x66, 0xe9])]), // Latin-1
      tsv(['cc12m/00000.tar', '000000009.jpg', 'a member that is not there']),
      tsv(['cc12m/00000.tar', '000000003.jpg', '']),
      tsv(['cc12m/00000.tar', '000000004.jpg', 'an empty member']),
      tsv(['cc12m/missing.tar', '000000005.jpg', 'a tar that is not there']),
      tsv(['only-one-field']),
      tsv(['cc12m/00000.tar', '000000003.jpg', 'the same image, captioned']),
    ]),
  );
  // Shard TSV with tar paths relative to itself, as the task describes them, and a trailing tab in the header.
  writeFileSync(
    join(cc12m, '00001.tsv'),
    tsv(
      ['tar', 'file', 'caption', ''],
      ['00001.tar', '000010000.jpg', 'first of the cut tar', ''],
      ['00001.tar', '000010001.jpg', 'cut off', ''],
    ),
  );
  writeFileSync(join(work, 'training_0.tsv'), 'filename\ncc12m/00001.tsv\ncc12m/00000.tsv\n\n');
});

async function samples(source: ShardedSource, skipped: SkipCounts = {}): Promise<SampleRef[]> {
  const out: SampleRef[] = [];
  for (let i = 0; i < source.shards.length; i++) for await (const ref of source.scan(i, skipped)) out.push(ref);
  return out;
}

describe('cc12mTsvSource', () => {
  it('reads the index and shard TSVs end to end, resolving members through the tar listings', async () => {
    const source = await cc12mTsvSource({ index: join(work, 'training_0.tsv') });
    expect(source.kind).toBe('cc12m');
    expect(source.shards).toEqual([join(cc12m, '00000.tsv'), join(cc12m, '00001.tsv')]);
    const skipped: SkipCounts = {};
    const refs = await samples(source, skipped);
    expect(refs.map((r) => [r.key, r.caption])).toEqual([
      ['000000000', 'a dog on a beach'],
      ['000000001', 'a "quoted" word,\ta tab\nand a newline'],
      ['000000003', 'the same image, captioned'],
      ['000010000', 'first of the cut tar'],
    ]);
    expect(skipped).toEqual({
      'caption not UTF-8': 1,
      'missing member': 2, // 000000009 and the cut 000010001
      'missing caption': 1,
      'empty image': 1,
      'missing tar': 1,
      'malformed row': 1,
      'truncated tar': 1,
    });
    const reds = [];
    for (const ref of refs) reds.push((await decodeImage(await readRange(ref.image), 4))[0]);
    expect(reds.map((r) => Math.round(r / 10) * 10)).toEqual([10, 20, 40, 50]);
  });

  it('counts a damaged tar again on each scan that uses it, though its listing is cached', async () => {
    const source = await cc12mTsvSource({ index: join(work, 'training_0.tsv') });
    for (let pass = 0; pass < 2; pass++) {
      const skipped: SkipCounts = {};
      for await (const _ of source.scan(1, skipped));
      expect(skipped).toEqual({ 'truncated tar': 1, 'missing member': 1 });
    }
  });

  it('fails at start, naming the file, for a missing index, a bad header or a missing shard TSV', async () => {
    await expect(cc12mTsvSource({ index: join(work, 'nope.tsv') })).rejects.toThrow(
      `no such index file: ${join(work, 'nope.tsv')}`,
    );
    writeFileSync(join(work, 'bad-index.tsv'), 'file\ncc12m/00000.tsv\n');
    await expect(cc12mTsvSource({ index: join(work, 'bad-index.tsv') })).rejects.toThrow(
      `${join(work, 'bad-index.tsv')} is not an index TSV`,
    );
    writeFileSync(join(work, 'gone.tsv'), 'filename\ncc12m/00009.tsv\n');
    await expect(cc12mTsvSource({ index: join(work, 'gone.tsv') })).rejects.toThrow(
      `not found: ${join(cc12m, '00009.tsv')}`,
    );
    writeFileSync(join(cc12m, 'bad-shard.tsv'), 'url\tcaption\nhttp://x\ty\n');
    writeFileSync(join(work, 'bad-shard-index.tsv'), 'filename\ncc12m/bad-shard.tsv\n');
    await expect(cc12mTsvSource({ index: join(work, 'bad-shard-index.tsv') })).rejects.toThrow(
      `${join(cc12m, 'bad-shard.tsv')} is not a shard TSV`,
    );
    writeFileSync(join(work, 'empty-index.tsv'), 'filename\n\n');
    await expect(cc12mTsvSource({ index: join(work, 'empty-index.tsv') })).rejects.toThrow('lists no shard TSVs');
  });

  it('rejects with a DataError (code DATA_INVALID), message unchanged', async () => {
    const missing = cc12mTsvSource({ index: join(work, 'absent.tsv') });
    await expect(missing).rejects.toBeInstanceOf(DataError);
    await expect(missing).rejects.toMatchObject({ code: 'DATA_INVALID' });
    await expect(missing).rejects.toThrow(`cc12m: no such index file: ${join(work, 'absent.tsv')}`);
    writeFileSync(join(work, 'no-column.tsv'), 'file\ncc12m/00000.tsv\n');
    const noColumn = cc12mTsvSource({ index: join(work, 'no-column.tsv') });
    await expect(noColumn).rejects.toMatchObject({ code: 'DATA_INVALID' });
    await expect(noColumn).rejects.toThrow(
      `cc12m: ${join(work, 'no-column.tsv')} is not an index TSV: its header is 'file', expected 'filename'`,
    );
  });
});
