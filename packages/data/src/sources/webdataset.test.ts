import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TarWriterMember, tar } from '@matryoshka-ts/test-utils';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../decode.js';
import type { SampleRef, ShardedSource, SkipCounts } from './source.js';
import { readRange } from './tar.js';
import { webdatasetSource } from './webdataset.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-webdataset-'));
const shards = join(dir, 'cc12m');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const image = (red: number, format: 'jpeg' | 'png' | 'webp' = 'jpeg') =>
  sharp({ create: { width: 24, height: 16, channels: 3, background: { r: red, g: 0, b: 0 } } })
    .toFormat(format, format === 'webp' ? { lossless: true } : {})
    .toBuffer();
const meta = (key: string) => JSON.stringify({ key, status: 'success', url: `https://example.invalid/${key}.jpg` });

/** One img2dataset sample: `<key>.jpg`, `<key>.txt`, `<key>.json`, any of them left out or replaced. */
function sample(
  key: string,
  parts: { jpg?: Uint8Array; png?: Uint8Array; webp?: Uint8Array; txt?: Uint8Array | string; json?: boolean },
): TarWriterMember[] {
  const members: TarWriterMember[] = [];
  for (const ext of ['jpg', 'png', 'webp', 'txt'] as const)
    if (parts[ext] !== undefined) members.push({ name: `${key}.${ext}`, data: parts[ext] });
  if (parts.json !== false) members.push({ name: `${key}.json`, data: meta(key) });
  return members;
}

beforeAll(async () => {
  mkdirSync(shards);
  writeFileSync(
    join(shards, '00000.tar'),
    tar([
      ...sample('000000000', { jpg: await image(10), txt: 'a dog on a beach' }),
      ...sample('000000001', { jpg: await image(20), txt: '  a caption with spaces \n' }),
      ...sample('000000002', { png: await image(30, 'png'), txt: 'a png sample' }),
      { name: '000000002.seg.png', data: await image(99, 'png') }, // webdataset: same sample, extension 'seg.png'
    ]),
  );
  const latin1 = new Uint8Array([0x63, 0x61, 0x66, 0xe9]); // "café" in Latin-1: not UTF-8
  writeFileSync(
    join(shards, '00001.tar'),
    tar([
      ...sample('000010000', { jpg: await image(40), txt: 'café ☕ 東京' }),
      ...sample('000010001', { jpg: await image(50), txt: latin1 }),
      ...sample('000010002', { jpg: await image(60) }),
      ...sample('000010003', { txt: 'a caption without an image' }),
      ...sample('000010004', { jpg: new Uint8Array(), txt: 'an empty image' }),
      ...sample('000010005', { webp: await image(70, 'webp'), txt: 'a webp sample' }),
      ...sample('000010006', { jpg: await image(80), txt: '   ' }),
    ]),
  );
  writeFileSync(join(shards, '00002.tar'), tar([])); // a shard with no members
  const first = sample('000030000', { jpg: await image(90), txt: 'kept' });
  const whole = tar([...first, ...sample('000030001', { jpg: await image(100), txt: 'lost' })]);
  const secondHeader = tar(first).length - 1024; // tar() ends with two zero blocks
  // 100 bytes into the second jpg
  writeFileSync(join(shards, '00003.tar'), whole.subarray(0, secondHeader + 512 + 100));
  // What img2dataset leaves beside the shards.
  for (const other of ['00000.parquet', '00000_stats.json', 'README.md']) writeFileSync(join(shards, other), '{}');
});

async function samples(source: ShardedSource, skipped: SkipCounts = {}, only?: number[]): Promise<SampleRef[]> {
  const out: SampleRef[] = [];
  for (const i of only ?? source.shards.map((_, k) => k))
    for await (const ref of source.scan(i, skipped)) out.push(ref);
  return out;
}

describe('webdatasetSource', () => {
  it(
    'reads img2dataset shards: samples grouped by key in stored order, ' + 'captions from .txt, bad samples counted',
    async () => {
      const source = await webdatasetSource({ path: shards });
      expect(source.kind).toBe('cc12m');
      expect(source.shards).toEqual(['00000', '00001', '00002', '00003'].map((n) => join(shards, `${n}.tar`)));
      const skipped: SkipCounts = {};
      const refs = await samples(source, skipped);
      expect(refs.map((r) => [r.key, r.caption, r.label])).toEqual([
        ['000000000', 'a dog on a beach', -1],
        ['000000001', 'a caption with spaces', -1],
        ['000000002', 'a png sample', -1],
        ['000010000', 'café ☕ 東京', -1],
        ['000010005', 'a webp sample', -1],
        ['000030000', 'kept', -1],
      ]);
      expect(skipped).toEqual({
        'caption not UTF-8': 1,
        'missing caption': 2,
        'missing image': 1,
        'empty image': 1,
        'truncated tar': 1,
      });
    },
  );

  it('points each sample at its image member (not the .seg.png beside it), which decodes', async () => {
    const refs = await samples(await webdatasetSource({ path: shards }));
    const reds = [];
    for (const ref of refs) reds.push((await decodeImage(await readRange(ref.image), 4))[0]);
    expect(reds.map((r) => Math.round(r / 10) * 10)).toEqual([10, 20, 30, 40, 70, 90]);
  });

  it('gives zero samples for an empty shard, without counting it', async () => {
    const skipped: SkipCounts = {};
    expect(await samples(await webdatasetSource({ path: join(shards, '00002.tar') }), skipped)).toEqual([]);
    expect(skipped).toEqual({});
  });

  it('takes brace patterns, globs and comma lists of shards', async () => {
    const keys = async (path: string) => (await samples(await webdatasetSource({ path }))).map((r) => r.key);
    expect(await keys(join(shards, '{00000..00001}.tar'))).toEqual([
      '000000000',
      '000000001',
      '000000002',
      '000010000',
      '000010005',
    ]);
    expect(await keys(join(shards, '00003*.tar'))).toEqual(['000030000']);
    expect(await keys(`${join(shards, '00003.tar')},${join(shards, '00000.tar')}`)).toEqual([
      '000000000',
      '000000001',
      '000000002',
      '000030000',
    ]); // sorted
  });

  it('fails at start for a missing path, a pattern matching nothing, a folder without tars', async () => {
    await expect(webdatasetSource({ path: join(dir, 'nope') })).rejects.toThrow(
      `no such file or directory: ${join(dir, 'nope')}`,
    );
    await expect(webdatasetSource({ path: join(shards, '{00000..00009}.tar') })).rejects.toThrow(
      join(shards, '00004.tar'),
    );
    await expect(webdatasetSource({ path: join(shards, '*.tgz') })).rejects.toThrow(
      `pattern matches no directory or .tar file: ${join(shards, '*.tgz')}`,
    );
    mkdirSync(join(dir, 'no-tars'));
    await expect(webdatasetSource({ path: join(dir, 'no-tars') })).rejects.toThrow(
      `no .tar files in ${join(dir, 'no-tars')}`,
    );
    await expect(webdatasetSource({ path: join(shards, 'README.md') })).rejects.toThrow('README.md');
  });
});
