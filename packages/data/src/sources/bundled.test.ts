import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../decode.js';
import { listEmoji, loadEmojiDataset } from '../emoji.js';
import { bundledSource } from './bundled.js';
import type { SampleRef, ShardedSource, SkipCounts } from './source.js';
import { readRange } from './tar.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-bundled-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function samples(source: ShardedSource, skipped: SkipCounts = {}): Promise<SampleRef[]> {
  const out: SampleRef[] = [];
  for (let i = 0; i < source.shards.length; i++) for await (const ref of source.scan(i, skipped)) out.push(ref);
  return out;
}

describe('bundledSource', () => {
  it('lists every bundled emoji in shards of 256, with the captions and labels of loadEmojiDataset', async () => {
    const source = await bundledSource();
    const { items, classNames } = listEmoji();
    expect(source.kind).toBe('bundled');
    expect(source.classNames).toEqual(classNames);
    expect(source.shards).toHaveLength(Math.ceil(items.length / 256));
    const skipped: SkipCounts = {};
    const refs = await samples(source, skipped);
    expect(skipped).toEqual({});
    expect(refs.map((r) => [r.caption, r.label])).toEqual(items.map((i) => [i.caption, i.label]));
    expect(new Set(refs.map((r) => r.key)).size).toBe(refs.length);
  });

  it('decodes to the pixels loadEmojiDataset gives at 64 px (alpha on white)', async () => {
    const options = { categories: ['Smileys & Emotion'], skinTones: false };
    const dataset = loadEmojiDataset(options);
    const refs = await samples(await bundledSource({ ...options, itemsPerShard: 50 }));
    expect(refs).toHaveLength(dataset.size);
    for (const k of [0, 7, refs.length - 1]) {
      expect(refs[k].caption).toBe(dataset.get(k).caption);
      const image = await decodeImage(await readRange(refs[k].image), 64);
      const reference = dataset.get(k).image;
      let worst = 0;
      for (let i = 0; i < image.length; i++) worst = Math.max(worst, Math.abs(image[i] - reference[i]));
      expect(worst).toBeLessThanOrEqual(1); // the two compositors round differently
    }
  });

  it('counts an image file that is missing', async () => {
    // A package copy with two entries and only the first image.
    const { items, imageDir } = listEmoji({ skinTones: false });
    const fake = join(dir, 'pkg');
    mkdirSync(join(fake, 'img', 'twitter', '64'), { recursive: true });
    const entry = (file: string, name: string, sort: number) => ({
      name,
      short_name: name,
      image: file,
      category: 'Symbols',
      sort_order: sort,
    });
    writeFileSync(
      join(fake, 'emoji.json'),
      JSON.stringify([entry(items[0].file, 'first', 1), entry('no-such.png', 'second', 2)]),
    );
    copyFileSync(join(imageDir, items[0].file), join(fake, 'img', 'twitter', '64', items[0].file));
    const skipped: SkipCounts = {};
    const refs = await samples(await bundledSource({ packageDir: fake }), skipped);
    expect(refs.map((r) => r.caption)).toEqual(['first']);
    expect(skipped).toEqual({ 'missing file': 1 });
  });
});
