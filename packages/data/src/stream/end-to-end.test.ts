// Each source read from a fixture in its real on-disk format, through the stream, the
// worker pool and the batcher, into training batches.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { tar } from '@matryoshka-ts/test-utils';
import { bundledSource } from '../sources/bundled.js';
import { cc12mTsvSource } from '../sources/cc12m-tsv.js';
import { imagenetSource } from '../sources/imagenet.js';
import type { ShardedSource } from '../sources/source.js';
import { webdatasetSource } from '../sources/webdataset.js';
import { webvidSource } from '../sources/webvid.js';
import { StreamBatcher, type StreamBatcherOptions } from './batches.js';
import { DecodePool } from './decode-pool.js';
import { encodeImage, testFfmpeg, writeTestVideo } from './test-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-e2e-'));
let pool: DecodePool;
beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
  pool = new DecodePool({ workers: 2, prefetch: 8 });
});
afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Reads `batches` batches of `size` from a source; checks shape, range and that tensors do not pile up. */
async function readBatches(
  source: ShardedSource,
  options: Partial<StreamBatcherOptions>,
  batches: number,
  batchSize: number,
) {
  const batcher = new StreamBatcher(source, { seed: 1, size: 16, shuffleBuffer: 8, pool, ...options });
  const out: Array<{ captions: string[]; labels: number[] }> = [];
  const before = tf.memory().numTensors;
  try {
    for (let i = 0; i < batches; i++) {
      const batch = await batcher.next(batchSize);
      expect(batch.images.shape).toEqual([batchSize, 16, 16, 3]);
      const v = batch.images.dataSync();
      expect(v.every((x) => x >= -1 && x <= 1)).toBe(true);
      out.push({ captions: batch.captions, labels: batch.labels });
      batch.images.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    return { batches: out, skipped: batcher.skipped };
  } finally {
    await batcher.close();
  }
}

const jpeg = (seed: number, w = 24, h = 20) => encodeImage(w, h, seed, 'jpeg');

describe('every source, from its real format into training batches', () => {
  it('imagenet: synset folders and a synset tar, labels from the synsets file, captions from class names', async () => {
    const train = join(dir, 'imagenet', 'train');
    for (const [k, wnid] of ['n01440764', 'n01443537'].entries()) {
      mkdirSync(join(train, wnid), { recursive: true });
      for (let i = 0; i < 3; i++) writeFileSync(join(train, wnid, `${wnid}_${i}.JPEG`), await jpeg(k * 10 + i));
    }
    writeFileSync(
      join(train, 'n01484850.tar'),
      tar(await Promise.all([0, 1, 2].map(async (i) => ({ name: `n01484850_${i}.JPEG`, data: await jpeg(30 + i) })))),
    );
    const mapping = join(dir, 'imagenet', 'LOC_synset_mapping.txt');
    writeFileSync(
      mapping,
      'n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\nn01484850 great white shark, white shark\n',
    );
    const source = await imagenetSource({ path: train, synsets: mapping });
    const { batches } = await readBatches(source, {}, 2, 4);
    const seen = batches.flatMap((b) => b.captions.map((c, i) => `${b.labels[i]}:${c}`));
    for (const s of seen) expect(['0:tench', '1:goldfish', '2:great white shark']).toContain(s);
  });

  it(
    'cc12m (img2dataset webdataset shards): jpg + txt + json members; ' + 'a corrupt image is skipped and counted',
    async () => {
      const shards = join(dir, 'cc12m');
      mkdirSync(shards, { recursive: true });
      for (let s = 0; s < 2; s++) {
        const members = [];
        for (let i = 0; i < 4; i++) {
          const key = `${String(s).padStart(5, '0')}${String(i).padStart(4, '0')}`;
          // first of its shard: never the epoch's last (counted once the batch passes it)
          const corrupt = s === 1 && i === 0;
          members.push({
            name: `${key}.jpg`,
            data: corrupt ? new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3]) : await jpeg(s * 4 + i, 32, 24),
          });
          members.push({ name: `${key}.txt`, data: `a photo number ${s * 4 + i}` });
          members.push({ name: `${key}.json`, data: JSON.stringify({ key, status: 'success' }) });
        }
        writeFileSync(join(shards, `${String(s).padStart(5, '0')}.tar`), tar(members));
      }
      const source = await webdatasetSource({ path: join(shards, '{00000..00001}.tar') });
      // 7 good images per epoch
      const { batches, skipped } = await readBatches(source, { flip: true, shuffleBuffer: 0 }, 1, 7);
      expect(skipped).toEqual({ 'corrupt image': 1 });
      expect(new Set(batches[0].captions).size).toBe(7);
      expect(batches[0].labels).toEqual(new Array(7).fill(-1));
    },
  );

  it('cc12m (the official TSV index): index → shard TSVs → members of tars', async () => {
    const root = join(dir, 'cc12m-tsv');
    mkdirSync(root, { recursive: true });
    writeFileSync(
      join(root, 'images.tar'),
      tar(await Promise.all([0, 1, 2, 3, 4].map(async (i) => ({ name: `${i}.jpg`, data: await jpeg(50 + i) })))),
    );
    writeFileSync(
      join(root, 'shard_0.tsv'),
      'tar\tfile\tcaption\nimages.tar\t0.jpg\ta red square\n' +
        'images.tar\t1.jpg\ta blue circle\nimages.tar\t9.jpg\tmissing member\n',
    );
    writeFileSync(
      join(root, 'shard_1.tsv'),
      'tar\tfile\tcaption\nimages.tar\t2.jpg\ta green star\nimages.tar\t3.jpg\t\nimages.tar\t4.jpg\ta yellow moon\n',
    );
    writeFileSync(join(root, 'training_0.tsv'), 'filename\nshard_0.tsv\nshard_1.tsv\n');
    const source = await cc12mTsvSource({ index: join(root, 'training_0.tsv') });
    const { batches, skipped } = await readBatches(source, {}, 1, 4);
    expect(new Set(batches[0].captions)).toEqual(
      new Set(['a red square', 'a blue circle', 'a green star', 'a yellow moon']),
    );
    expect(skipped).toEqual({ 'missing member': 1, 'missing caption': 1 });
  });

  it('webvid: CSV + downloaded videos; each clip gives `frames` images; a missing video is counted', async () => {
    const root = join(dir, 'webvid');
    mkdirSync(join(root, 'videos', '001'), { recursive: true });
    await writeTestVideo(join(root, 'videos', '11.mp4'), 10);
    await writeTestVideo(join(root, 'videos', '001', '12.mp4'), 10, 16, 'rgbtestsrc');
    writeFileSync(
      join(root, 'results.csv'),
      'videoid,contentUrl,duration,page_dir,name\n' +
        '11,http://x/11.mp4,PT00H00M01S,001,"Waves, at dusk"\n' +
        '12,http://x/12.mp4,PT00H00M01S,001,A cat\n' +
        '13,http://x/13.mp4,PT00H00M01S,001,Gone\n',
    );
    const ffmpeg = await testFfmpeg();
    const source = await webvidSource({
      csv: join(root, 'results.csv'),
      videos: join(root, 'videos'),
      rowsPerShard: 2,
      ffmpeg,
    });
    const { batches, skipped } = await readBatches(source, { frames: 4, stride: 2, ffmpeg, flip: true }, 2, 4);
    const captions = batches.flatMap((b) => b.captions);
    // Two clips of 4 frames: each caption four times in a row.
    expect(captions.slice(0, 4).every((c) => c === captions[0])).toBe(true);
    expect(new Set(captions)).toEqual(new Set(['Waves, at dusk', 'A cat']));
    expect(skipped).toEqual({ 'missing video': 1 });
  });

  it('webvid for the video model: each sample a whole clip, its frames adjacent rows, one caption', async () => {
    const root = join(dir, 'webvid-clips');
    mkdirSync(join(root, 'videos'), { recursive: true });
    await writeTestVideo(join(root, 'videos', '21.mp4'), 10);
    await writeTestVideo(join(root, 'videos', '22.mp4'), 10, 16, 'rgbtestsrc');
    writeFileSync(
      join(root, 'results.csv'),
      'videoid,contentUrl,duration,page_dir,name\n' +
        '21,http://x/21.mp4,PT00H00M01S,,Waves\n22,http://x/22.mp4,PT00H00M01S,,A cat\n',
    );
    const ffmpeg = await testFfmpeg();
    const source = await webvidSource({ csv: join(root, 'results.csv'), videos: join(root, 'videos'), ffmpeg });
    const batcher = new StreamBatcher(source, { seed: 1, size: 8, frames: 4, stride: 2, ffmpeg, clips: true, pool });
    try {
      const batch = await batcher.next(2);
      expect(batch.images.shape).toEqual([8, 8, 8, 3]);
      expect(new Set(batch.captions)).toEqual(new Set(['Waves', 'A cat']));
      // The clip's frames differ (the test source moves), and the two clips differ.
      const rows = batch.images.arraySync() as number[][][][];
      const differ = (a: number, b: number) => JSON.stringify(rows[a]) !== JSON.stringify(rows[b]);
      expect(differ(0, 3)).toBe(true);
      expect(differ(0, 4)).toBe(true);
      expect(batcher.position.frame).toBeUndefined();
      batch.images.dispose();
    } finally {
      await batcher.close();
    }
  });

  it('bundled: the shipped emoji through the same pipeline', async () => {
    const source = await bundledSource({ categories: ['Smileys & Emotion'], skinTones: false, itemsPerShard: 40 });
    const { batches, skipped } = await readBatches(source, {}, 2, 4);
    expect(skipped).toEqual({});
    expect(batches[0].captions.every((c) => c.length > 0)).toBe(true);
  });
});
