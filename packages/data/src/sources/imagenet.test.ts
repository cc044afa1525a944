import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tar } from '@matryoshka-ts/test-utils';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../decode.js';
import { imagenetSource } from './imagenet.js';
import type { SampleRef, ShardedSource, SkipCounts } from './source.js';
import { readRange } from './tar.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-imagenet-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A flat-colour JPEG whose red channel tells which image it is. */
const jpeg = (red: number, width = 40, height = 30) =>
  sharp({ create: { width, height, channels: 3, background: { r: red, g: 100, b: 50 } } })
    .jpeg()
    .toBuffer();

/** Synset → its images (name → bytes); folders and tars are written from the same table. */
const synsets: Record<string, Record<string, Buffer>> = {};
const train = join(dir, 'train');
const tars = join(dir, 'tars');

beforeAll(async () => {
  synsets.n01443537 = { 'n01443537_2.JPEG': await jpeg(200), 'n01443537_1.JPEG': await jpeg(180, 30, 60) };
  synsets.n01440764 = { 'n01440764_10026.JPEG': await jpeg(20), 'n01440764_7.jpeg': await jpeg(40) };
  synsets.n01484850 = {
    'n01484850_5.png': await sharp({ create: { width: 8, height: 8, channels: 4, background: '#00ff0080' } })
      .png()
      .toBuffer(),
  };
  for (const [wnid, files] of Object.entries(synsets)) {
    mkdirSync(join(train, wnid), { recursive: true });
    for (const [name, bytes] of Object.entries(files)) writeFileSync(join(train, wnid, name), bytes);
    mkdirSync(tars, { recursive: true });
    writeFileSync(
      join(tars, `${wnid}.tar`),
      tar(
        Object.entries(files)
          .sort()
          .map(([name, data]) => ({ name: `${wnid}/${name}`, data })),
      ),
    );
  }
  writeFileSync(join(train, 'n01440764', 'notes.txt'), 'not an image'); // ignored
  writeFileSync(
    join(dir, 'LOC_synset_mapping.txt'),
    'n01484850 great white shark, white shark\nn01440764 tench, Tinca tinca\n\n' +
      'n01443537 goldfish, Carassius auratus\nn09999999 extra, unused\n',
  );
  writeFileSync(join(dir, 'wnids.txt'), 'n01484850\nn01443537\nn01440764\n');
});

async function samples(source: ShardedSource, skipped: SkipCounts = {}): Promise<SampleRef[]> {
  const out: SampleRef[] = [];
  for (let i = 0; i < source.shards.length; i++) for await (const ref of source.scan(i, skipped)) out.push(ref);
  return out;
}

const summary = (refs: SampleRef[]) => refs.map((r) => [r.key, r.label, r.caption]);

describe('imagenetSource: synset folders', () => {
  it(
    'lists one shard per synset, images in name order, ' + 'labels in sorted wnid order, no captions without names',
    async () => {
      const source = await imagenetSource({ path: train });
      expect(source.kind).toBe('imagenet');
      expect(source.shards).toEqual(['n01440764', 'n01443537', 'n01484850'].map((w) => join(train, w)));
      expect(source.classNames).toEqual(['n01440764', 'n01443537', 'n01484850']);
      const refs = await samples(source);
      expect(summary(refs)).toEqual([
        ['n01440764/n01440764_10026', 0, ''],
        ['n01440764/n01440764_7', 0, ''],
        ['n01443537/n01443537_1', 1, ''],
        ['n01443537/n01443537_2', 1, ''],
        ['n01484850/n01484850_5', 2, ''],
      ]);
      expect(refs[0].image).toEqual({
        path: join(train, 'n01440764', 'n01440764_10026.JPEG'),
        offset: 0,
        size: synsets.n01440764['n01440764_10026.JPEG'].length,
      });
    },
  );

  it('decodes the images the references point at', async () => {
    const refs = await samples(await imagenetSource({ path: train }));
    const reds = [];
    for (const ref of refs) reds.push((await decodeImage(await readRange(ref.image), 8))[0]);
    expect(reds.map((r) => Math.round(r / 10) * 10)).toEqual([20, 40, 180, 200, 130]); // the PNG: half green over white
  });

  it('takes labels and captions from a LOC_synset_mapping.txt, or labels from a plain wnid list', async () => {
    const mapped = await imagenetSource({ path: train, synsets: join(dir, 'LOC_synset_mapping.txt') });
    expect(mapped.classNames).toEqual(['great white shark', 'tench', 'goldfish', 'extra']);
    expect(mapped.wnids).toEqual(['n01484850', 'n01440764', 'n01443537', 'n09999999']);
    expect(summary(await samples(mapped)).map(([k, l, c]) => `${k}:${l}:${c}`)).toEqual([
      'n01440764/n01440764_10026:1:tench',
      'n01440764/n01440764_7:1:tench',
      'n01443537/n01443537_1:2:goldfish',
      'n01443537/n01443537_2:2:goldfish',
      'n01484850/n01484850_5:0:great white shark',
    ]);
    const listed = await imagenetSource({ path: train, synsets: join(dir, 'wnids.txt') });
    expect((await samples(listed)).map((r) => r.label)).toEqual([2, 2, 1, 1, 0]);
    expect(listed.classNames).toEqual(['n01484850', 'n01443537', 'n01440764']);
  });

  it('reads class names from a mapping, a names-per-label list or a JSON class index', async () => {
    writeFileSync(join(dir, 'names.txt'), 'tench, Tinca tinca\ngoldfish\ngreat white shark\n');
    const byLine = await imagenetSource({ path: train, classNames: join(dir, 'names.txt') });
    expect(byLine.classNames).toEqual(['tench', 'goldfish', 'great white shark']);
    const byMapping = await imagenetSource({ path: train, classNames: join(dir, 'LOC_synset_mapping.txt') });
    expect(byMapping.classNames).toEqual(['tench', 'goldfish', 'great white shark']);
    writeFileSync(
      join(dir, 'index.json'),
      JSON.stringify({
        0: ['n01440764', 'tench'],
        1: ['n01443537', 'goldfish'],
        2: ['n01484850', 'great_white_shark'],
      }),
    );
    const byJson = await imagenetSource({ path: train, classNames: join(dir, 'index.json') });
    expect((await samples(byJson)).map((r) => r.caption)).toEqual([
      'tench',
      'tench',
      'goldfish',
      'goldfish',
      'great white shark',
    ]);
  });
});

describe('imagenetSource: synset tars', () => {
  it('reads a folder, a glob or a brace list of <wnid>.tar with the same keys and labels as the folders', async () => {
    const folders = summary(await samples(await imagenetSource({ path: train })));
    for (const path of [tars, join(tars, '*.tar'), join(tars, 'n01{440764,443537,484850}.tar')]) {
      const source = await imagenetSource({ path });
      expect(source.shards).toHaveLength(3);
      expect(summary(await samples(source))).toEqual(folders);
    }
  });

  it('points at the member bytes inside the tar', async () => {
    const refs = await samples(await imagenetSource({ path: tars }));
    expect(Buffer.from(await readRange(refs[1].image)).equals(synsets.n01440764['n01440764_7.jpeg'])).toBe(true);
    expect(refs[1].image.path).toBe(join(tars, 'n01440764.tar'));
  });
});

describe('imagenetSource: bad input', () => {
  it(
    'skips and counts empty files and truncated tars; ' +
      'an empty tar is an empty shard; corrupt bytes fail at decode',
    async () => {
      const bad = join(dir, 'bad');
      mkdirSync(join(bad, 'n00000001'), { recursive: true });
      writeFileSync(join(bad, 'n00000001', 'empty.JPEG'), '');
      writeFileSync(join(bad, 'n00000001', 'corrupt.JPEG'), (await jpeg(10)).subarray(0, 200));
      const whole = tar([
        { name: 'a.JPEG', data: await jpeg(1) },
        { name: 'b.JPEG', data: await jpeg(2) },
      ]);
      // cut inside b's data
      writeFileSync(join(bad, 'n00000002.tar'), whole.subarray(0, 512 + (await jpeg(1)).length + 600));
      writeFileSync(join(bad, 'n00000003.tar'), tar([]));
      const skipped: SkipCounts = {};
      const refs = await samples(await imagenetSource({ path: bad }), skipped);
      expect(refs.map((r) => r.key)).toEqual(['n00000001/corrupt', 'n00000002/a']);
      expect(skipped).toEqual({ 'empty image': 1, 'truncated tar': 1 });
      await expect(decodeImage(await readRange(refs[0].image), 8)).rejects.toThrow();
    },
  );

  it(
    'fails at start, naming the path, for a missing path, ' + 'an empty pattern, an empty folder or a bad synsets file',
    async () => {
      await expect(imagenetSource({ path: join(dir, 'missing') })).rejects.toThrow(
        `no such file or directory: ${join(dir, 'missing')}`,
      );
      await expect(imagenetSource({ path: join(tars, '*.zip') })).rejects.toThrow(
        `pattern matches no directory or .tar file: ${join(tars, '*.zip')}`,
      );
      mkdirSync(join(dir, 'empty'));
      await expect(imagenetSource({ path: join(dir, 'empty') })).rejects.toThrow(
        `no synset folders, synset .tar files or images in ${join(dir, 'empty')}`,
      );
      await expect(imagenetSource({ path: train, synsets: join(dir, 'nope.txt') })).rejects.toThrow(
        `no such synsets file: ${join(dir, 'nope.txt')}`,
      );
      writeFileSync(join(dir, 'short.txt'), 'n01440764\n');
      await expect(imagenetSource({ path: train, synsets: join(dir, 'short.txt') })).rejects.toThrow(
        'synset n01443537',
      );
      writeFileSync(join(dir, 'one-name.txt'), 'tench\n');
      await expect(imagenetSource({ path: train, classNames: join(dir, 'one-name.txt') })).rejects.toThrow(
        '1 names for 3 classes',
      );
    },
  );

  it('keeps readFileSync-equal bytes for every folder image (sizes from stat)', async () => {
    for (const ref of await samples(await imagenetSource({ path: train })))
      expect(ref.image.size).toBe(readFileSync(ref.image.path).length);
  });
});
