// The data pipeline against raw decoding: a few hundred JPEGs in img2dataset (webdataset) tar
// shards — generated, or yours with --path — decoded (a) one after another on the main thread with
// decodeImage, as a script without workers would, and (b) through the training pipeline
// (StreamBatcher: stream, shuffle buffer, worker pool, batches as tensors), in alternating rounds
// over the same files. Prints images/s of each and ends with `ratio_pipeline_raw=<x>` (median
// pipeline / median raw). A benchmark, not a test:
//   pnpm bench:data [--path <shards>] [--count 300] [--size 64] [--rounds 3] [--workers n] [--batch 32]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@matryoshka-ts/backends';
import {
  DecodePool,
  type SampleRef,
  StreamBatcher,
  decodeImage,
  defaultWorkers,
  readRange,
  webdatasetSource,
} from '@matryoshka-ts/data';
import { tar } from '@matryoshka-ts/test-utils';
import sharp from 'sharp';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const count = Number(args.get('count') ?? 300);
const size = Number(args.get('size') ?? 64);
const rounds = Number(args.get('rounds') ?? 3);
const workers = Number(args.get('workers') ?? defaultWorkers());
const batchSize = Number(args.get('batch') ?? 32);

/**
 * `n` photo-like JPEGs (smooth colour fields plus noise, 320×240 to 500×375 like downscaled web
 * images) with captions, in shards of 100 as img2dataset writes them.
 */
async function generateShards(dir: string, n: number): Promise<string> {
  const shards = join(dir, 'shards');
  mkdirSync(shards, { recursive: true });
  let seed = 1;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 4294967296;
  };
  for (let s = 0; s * 100 < n; s++) {
    const members = [];
    for (let i = s * 100; i < Math.min(n, (s + 1) * 100); i++) {
      const w = 320 + 60 * (i % 4);
      const h = Math.round((w * 3) / 4);
      const px = Buffer.alloc(w * h * 3);
      const [a, b, c] = [random() * 6, random() * 6, random() * 255];
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const o = (y * w + x) * 3;
          px[o] = 128 + 100 * Math.sin((x / w) * a + y / 40);
          px[o + 1] = 128 + 100 * Math.cos((y / h) * b + x / 55);
          px[o + 2] = (c + random() * 60) % 256;
        }
      const key = String(i).padStart(9, '0');
      members.push({
        name: `${key}.jpg`,
        data: await sharp(px, { raw: { width: w, height: h, channels: 3 } })
          .jpeg({ quality: 90 })
          .toBuffer(),
      });
      members.push({ name: `${key}.txt`, data: `generated image ${i}` });
    }
    writeFileSync(join(shards, `${String(s).padStart(5, '0')}.tar`), tar(members));
  }
  return shards;
}

/** (a) Read and decode every sample one after another on the main thread. */
async function rawRound(refs: SampleRef[]): Promise<number> {
  const started = performance.now();
  for (const ref of refs) await decodeImage(await readRange(ref.image), size);
  return (refs.length * 1000) / (performance.now() - started);
}

/** (b) One epoch through StreamBatcher: all samples as [B, size, size, 3] tensors in [−1, 1]. */
async function pipelineRound(
  source: Awaited<ReturnType<typeof webdatasetSource>>,
  pool: DecodePool,
  n: number,
): Promise<number> {
  const batcher = new StreamBatcher(source, { seed: 0, size, pool });
  const started = performance.now();
  for (let done = 0; done < n; ) {
    const batch = await batcher.next(Math.min(batchSize, n - done));
    done += batch.captions.length;
    batch.images.dispose();
  }
  const rate = (n * 1000) / (performance.now() - started);
  await batcher.close();
  return rate;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  await initBackend({ backend: 'cpu', quiet: true });
  const dir = mkdtempSync(join(tmpdir(), 'mdm-data-bench-'));
  try {
    const path = args.get('path') ?? (await generateShards(dir, count));
    const source = await webdatasetSource({ path });
    const refs: SampleRef[] = [];
    for (let s = 0; s < source.shards.length; s++) for await (const ref of source.scan(s, {})) refs.push(ref);
    console.log(
      `cores=${availableParallelism()} workers=${workers} images=${refs.length} size=${size} ` +
        `batch=${batchSize} source=${source.id}`,
    );
    const pool = new DecodePool({ workers });
    // Start the workers (and warm the decoders) before timing.
    await Promise.all(
      refs
        .slice(0, workers * 2)
        .map((ref) => pool.decode({ image: ref.image, video: false, size, flip: false, frames: 1, stride: 1 })),
    );
    await rawRound(refs.slice(0, 10));
    const raw: number[] = [];
    const pipeline: number[] = [];
    for (let r = 0; r < rounds; r++) {
      raw.push(await rawRound(refs));
      pipeline.push(await pipelineRound(source, pool, refs.length));
      console.log(`round ${r + 1}: raw ${raw[r].toFixed(1)} images/s, pipeline ${pipeline[r].toFixed(1)} images/s`);
    }
    await pool.close();
    console.log(`raw_images_per_s=${median(raw).toFixed(1)} pipeline_images_per_s=${median(pipeline).toFixed(1)}`);
    console.log(`ratio_pipeline_raw=${(median(pipeline) / median(raw)).toFixed(2)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
