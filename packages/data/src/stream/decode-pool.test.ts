import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { decodeImage } from '../decode.js';
import type { SampleRef, ShardedSource } from '../sources/source.js';
import { StreamBatcher } from './batches.js';
import { DecodePool } from './decode-pool.js';
import type { DecodeTask } from './decode-task.js';
import { encodeImage, imageFileSource, memorySource, testFfmpeg, writeTestVideo } from './test-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-pool-'));
afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

const imageTask = (ref: SampleRef, size = 8, flip = false): DecodeTask => ({
  image: ref.image,
  video: false,
  size,
  flip,
  frames: 1,
  stride: 1,
});
/** Every reference of every shard of a source, in stored order. */
async function allRefs(source: ShardedSource): Promise<SampleRef[]> {
  const refs: SampleRef[] = [];
  for (let s = 0; s < source.shards.length; s++) for await (const ref of source.scan(s, {})) refs.push(ref);
  return refs;
}

let source: ShardedSource;
let refs: SampleRef[];
// One pool for the file: a worker takes ~1.5 s to start from TypeScript sources (tsx + sharp).
let pool: DecodePool;
beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
  pool = new DecodePool({ workers: 2, prefetch: 5 });
  // 24 PNGs, two of them corrupt, in two shards.
  source = await imageFileSource(join(dir, 'images'), 24, { size: 12, corrupt: [5, 17], shards: 2 });
  refs = await allRefs(source);
});

describe('DecodePool', () => {
  it(
    'decodes in worker threads exactly as on the main thread, delivers results in order, ' +
      'and counts a corrupt image instead of throwing',
    async () => {
      {
        let i = 0;
        const outcomes = [];
        for await (const { item, outcome } of pool.decodeInOrder(
          async () => refs[i++],
          (ref) => imageTask(ref, 8, i % 3 === 0),
        ))
          outcomes.push({ ref: item, outcome });
        expect(outcomes.map((o) => o.ref.key)).toEqual(refs.map((r) => r.key));
        for (const [k, { ref, outcome }] of outcomes.entries()) {
          if (ref.key === '5' || ref.key === '17') {
            expect(outcome).toMatchObject({ ok: false, reason: 'corrupt image' });
            continue;
          }
          expect(outcome.ok).toBe(true);
          if (!outcome.ok) continue;
          const expected = await decodeImage(readFileSync(ref.image.path), 8, { flip: (k + 1) % 3 === 0 });
          expect(outcome.pixels).toEqual(expected);
          // The pixels arrive in a buffer of their own (transferred from the worker, not a view into a shared one).
          expect(outcome.pixels.byteLength).toBe(outcome.pixels.buffer.byteLength);
        }
        // A missing file is a skip too.
        const missing = await pool.decode(
          imageTask({ ...refs[0], image: { path: join(dir, 'gone.png'), offset: 0, size: 10 } }),
        );
        expect(missing).toMatchObject({ ok: false, reason: 'unreadable file' });
        expect(pool.imagesPerSecond).toBeGreaterThan(0);
      }
    },
  );

  it('keeps order when later tasks finish first', async () => {
    // A large image first, small ones after: the small ones finish earlier on the other worker.
    const big = join(dir, 'big.png');
    writeFileSync(big, await encodeImage(1200, 1200, 1, 'png'));
    const order: SampleRef[] = [
      { ...refs[0], key: 'big', image: { path: big, offset: 0, size: readFileSync(big).length } },
      ...refs.slice(0, 4),
    ];
    {
      // They finish out of order… (timing: on 2 busy cores the other worker can be descheduled
      // for longer than the big decode takes, so up to 3 tries).
      let outOfOrder = false;
      for (let attempt = 0; attempt < 3 && !outOfOrder; attempt++) {
        const finished: string[] = [];
        await Promise.all(
          order.map((ref) =>
            pool.decode(imageTask(ref)).then((o) => {
              finished.push(ref.key);
              return o;
            }),
          ),
        );
        outOfOrder = finished[0] !== 'big';
      }
      expect(outOfOrder).toBe(true);
      let i = 0;
      const keys: string[] = [];
      for await (const { item } of pool.decodeInOrder(
        async () => order[i++],
        (ref) => imageTask(ref),
      ))
        keys.push(item.key);
      expect(keys).toEqual(order.map((r) => r.key)); // …and decodeInOrder still yields in input order
    }
  });

  it('terminates its workers on close, and a closed pool answers with a fatal skip', async () => {
    const own = new DecodePool({ workers: 1 });
    expect((await own.decode(imageTask(refs[0]))).ok).toBe(true);
    expect(own.liveWorkers).toBe(1);
    await own.close();
    expect(own.liveWorkers).toBe(0); // every worker's thread has exited
    expect(await own.decode(imageTask(refs[0]))).toMatchObject({ ok: false, fatal: true, reason: 'decoder closed' });
  });

  it('fails every task as fatal when a worker dies, rather than skipping samples or hanging', async () => {
    const crashing = new DecodePool({ workers: 1 });
    const pending = crashing.decode(imageTask(refs[0]));
    // A worker thread that goes away under the pool (as after an abort in native code).
    await (
      crashing as unknown as { slots: Array<{ worker: { terminate(): Promise<number> } }> }
    ).slots[0].worker.terminate();
    expect(await pending).toMatchObject({
      ok: false,
      fatal: true,
      reason: 'decoder crashed',
      message: expect.stringMatching(/decode worker exited/),
    });
    expect(await crashing.decode(imageTask(refs[0]))).toMatchObject({
      ok: false,
      fatal: true,
      reason: 'decoder crashed',
    });
    await crashing.close();
  });
});

describe('StreamBatcher', () => {
  it(
    'packs decoded images into [B, r, r, 3] batches in [−1, 1], ' + 'skipping corrupt ones, with tf.memory flat',
    async () => {
      const batcher = new StreamBatcher(source, { seed: 3, size: 8, shuffleBuffer: 4, pool });
      try {
        const counts: number[] = [];
        const seen: string[] = [];
        for (let step = 0; step < 6; step++) {
          const batch = await batcher.next(5);
          expect(batch.images.shape).toEqual([5, 8, 8, 3]);
          const v = batch.images.dataSync();
          expect(Math.min(...v)).toBeGreaterThanOrEqual(-1);
          expect(Math.max(...v)).toBeLessThanOrEqual(1);
          seen.push(...batch.captions);
          expect(batch.labels).toEqual(batch.captions.map((c) => Number(c.split(' ')[1])));
          tf.dispose(batch.images);
          counts.push(tf.memory().numTensors);
        }
        expect(new Set(counts).size).toBe(1);
        // 30 images read: the first epoch's 22 good ones, then 8 of the second; each corrupt one skipped once per
        // epoch.
        expect(new Set(seen.slice(0, 22)).size).toBe(22);
        expect(seen).not.toContain('image 5');
        expect(batcher.skipped['corrupt image']).toBeGreaterThanOrEqual(2);
        expect(batcher.imagesRead).toBe(30);
        expect(batcher.imagesPerSecond).toBeGreaterThan(0);
      } finally {
        await batcher.close();
      }
    },
  );

  it('resumes exactly from its position: the batches after equal those of an uninterrupted run', async () => {
    const options = { seed: 9, size: 8, shuffleBuffer: 6, flip: true, pool };
    const run = async (batcher: StreamBatcher, n: number) => {
      const out: Array<{ captions: string[]; pixels: number[] }> = [];
      for (let i = 0; i < n; i++) {
        const b = await batcher.next(4);
        out.push({ captions: b.captions, pixels: Array.from(b.images.dataSync()) });
        b.images.dispose();
      }
      return out;
    };
    const whole = new StreamBatcher(source, options);
    const expected = await run(whole, 8); // 32 images: across the epoch boundary (22 per epoch)
    const wholeSkipped = whole.skipped['corrupt image'];
    await whole.close();
    const first = new StreamBatcher(source, options);
    const head = await run(first, 3);
    const position = first.position;
    const firstSkipped = first.skipped['corrupt image'] ?? 0;
    await first.close();
    const second = new StreamBatcher(source, { ...options, position });
    const tail = await run(second, 5);
    expect([...head, ...tail]).toEqual(expected);
    // Skips are counted up to the position, so the two parts add up to the uninterrupted run's.
    expect(firstSkipped + (second.skipped['corrupt image'] ?? 0)).toBe(wholeSkipped);
    expect(wholeSkipped).toBeGreaterThanOrEqual(2);
    await second.close();
  });

  it(
    'stops with the message when decoding cannot work at all (ffmpeg missing), ' + 'instead of skipping every sample',
    async () => {
      const video = memorySource([
        [{ key: 'v', image: { path: join(dir, 'x.mp4'), offset: 0, size: 1 }, caption: 'v', label: -1, video: true }],
      ]);
      const batcher = new StreamBatcher(video, { seed: 0, size: 8, pool, ffmpeg: join(dir, 'no-such-ffmpeg') });
      await expect(batcher.next(1)).rejects.toThrow(/ffmpeg not found/);
      await batcher.close();
    },
  );
});

describe('StreamBatcher on video', () => {
  it('hands out each clip frame as an image and resumes inside a clip at the next frame', async () => {
    const ffmpeg = await testFfmpeg();
    const videos: SampleRef[] = [];
    for (let i = 0; i < 3; i++) {
      const path = join(dir, `clip${i}.mp4`);
      await writeTestVideo(path, 12, 16, i === 1 ? 'rgbtestsrc' : 'testsrc');
      videos.push({
        key: `v${i}`,
        image: { path, offset: 0, size: readFileSync(path).length },
        caption: `clip ${i}`,
        label: -1,
        video: true,
      });
    }
    videos.push({
      key: 'bad',
      image: { path: join(dir, 'clip-missing.mp4'), offset: 0, size: 1 },
      caption: 'bad',
      label: -1,
      video: true,
    });
    const source = memorySource([videos.slice(0, 2), videos.slice(2)]);
    const options = { seed: 2, size: 8, frames: 4, stride: 2, shuffleBuffer: 0, flip: true, ffmpeg, pool };
    const run = async (batcher: StreamBatcher, n: number) => {
      const out: Array<{ captions: string[]; pixels: number[] }> = [];
      for (let i = 0; i < n; i++) {
        const b = await batcher.next(3);
        expect(b.images.shape).toEqual([3, 8, 8, 3]);
        out.push({ captions: b.captions, pixels: Array.from(b.images.dataSync()) });
        b.images.dispose();
      }
      return out;
    };
    const whole = new StreamBatcher(source, options);
    const expected = await run(whole, 6); // 18 images: 12 frames of epoch 0, 6 of epoch 1
    expect(whole.skipped).toEqual({ 'unreadable video': 2 });
    await whole.close();
    // Three clips of 4 frames per epoch, each caption 4 times in a row.
    const captions = expected.flatMap((b) => b.captions);
    expect(captions.slice(0, 12).filter((c) => c === 'clip 0')).toHaveLength(4);
    expect(captions[0]).toBe(captions[3]);
    const first = new StreamBatcher(source, options);
    const head = await run(first, 2); // 6 images: stops in the middle of the second clip
    expect(first.position.frame).toBe(2);
    const position = JSON.parse(JSON.stringify(first.position));
    await first.close();
    const second = new StreamBatcher(source, { ...options, position });
    expect([...head, ...(await run(second, 4))]).toEqual(expected);
    await second.close();
    // A video with fewer frames than the clip needs (3 < 1 + (4 − 1) × 2) is skipped as too short.
    const short = join(dir, 'short.mp4');
    await writeTestVideo(short, 3);
    const outcome = await pool.decode({
      image: { path: short, offset: 0, size: 1 },
      video: true,
      size: 8,
      flip: false,
      frames: 4,
      stride: 2,
      ffmpeg,
    });
    expect(outcome).toMatchObject({ ok: false, reason: 'video too short' });
  });
});
