import { DataError } from '@matryoshka-ts/core';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { checkFfmpeg } from '../decode.js';
import { readDelimited, readHeader, recordOffsets } from './delimited.js';
import { isDirectory, isFile } from './patterns.js';
import { type SampleRef, type ShardedSource, type SkipCounts, countSkip } from './source.js';
import { decodeUtf8 } from './text.js';

export interface WebvidOptions {
  /**
   * The WebVid CSV (`results_2M_train.csv`): header with `videoid` and `name` (the caption); `page_dir` used if
   * present.
   */
  csv: string;
  /** Folder of the downloaded videos: `<videos>/<videoid>.mp4` or `<videos>/<page_dir>/<videoid>.mp4`. */
  videos: string;
  /** Rows per shard (default 1000): consecutive blocks of rows, the unit of shuffling and rank partitioning. */
  rowsPerShard?: number;
  /** The ffmpeg binary (default `MDM_FFMPEG`, else `ffmpeg` on PATH), checked at start. */
  ffmpeg?: string;
}

export interface WebvidSource extends ShardedSource {
  readonly kind: 'webvid';
  /** Data rows in the CSV (malformed ones included). */
  readonly rows: number;
}

/** A block of rows: where it starts in the CSV and how many rows it has. */
interface RowBlock {
  offset: number;
  rows: number;
}

/**
 * WebVid (-2M / -10M) as distributed: the CSV of video ids and captions, with the videos downloaded
 * beside it. Clips are decoded later by `decodeVideoClip` (16 frames, every 4th, as in the paper).
 * At start: ffmpeg is checked, the CSV header read, and the whole CSV passed over once to find where
 * each block of `rowsPerShard` rows starts (only offsets are kept, so WebVid-10M's CSV fits). A row
 * whose video is missing, or whose caption is empty or not UTF-8, is skipped and counted.
 */
export async function webvidSource(options: WebvidOptions): Promise<WebvidSource> {
  const { csv, videos, rowsPerShard = 1000 } = options;
  if (!(Number.isInteger(rowsPerShard) && rowsPerShard > 0))
    throw new Error(`webvid: rowsPerShard must be a positive integer, got ${rowsPerShard}`);
  checkFfmpeg(options.ffmpeg);
  if (!isFile(csv)) throw new DataError(`webvid: no such CSV file: ${csv}`);
  if (!isDirectory(videos)) throw new DataError(`webvid: no such video folder: ${videos}`);
  const columns = await csvColumns(csv);
  const blocks = await rowBlocks(csv, columns.end, rowsPerShard);
  if (blocks.length === 0) throw new DataError(`webvid: ${csv} has a header but no rows`);
  const rows = blocks.reduce((n, b) => n + b.rows, 0);
  const shards = blocks.map((_, k) => `${csv}#rows=${k * rowsPerShard}-${k * rowsPerShard + blocks[k].rows - 1}`);
  return {
    id: `webvid:${resolve(csv)};videos=${resolve(videos)};rowsPerShard=${rowsPerShard}`,
    kind: 'webvid',
    shards,
    classNames: [],
    rows,
    scan(index: number, skipped: SkipCounts): AsyncIterable<SampleRef> {
      const block = blocks[index];
      if (block === undefined) throw new RangeError(`webvid: no shard ${index} (${blocks.length} shards)`);
      return scanBlock(csv, videos, columns, block, skipped);
    },
  };
}

interface Columns {
  videoid: number;
  name: number;
  /** -1 when the CSV has no `page_dir` column. */
  pageDir: number;
  /** Where the rows start. */
  end: number;
}

async function csvColumns(csv: string): Promise<Columns> {
  const header = await readHeader(csv, ',');
  const names = header?.names ?? [];
  const [videoid, name, pageDir] = ['videoid', 'name', 'page_dir'].map((c) => names.indexOf(c));
  if (!header || videoid < 0 || name < 0) {
    throw new DataError(
      `webvid: ${csv} is not a WebVid CSV: its header is '${names.join(',')}', expected the columns videoid and name`,
    );
  }
  return { videoid, name, pageDir, end: header.end };
}

/** One pass over the rows, keeping where every `rowsPerShard`-th row starts. */
async function rowBlocks(csv: string, start: number, rowsPerShard: number): Promise<RowBlock[]> {
  const blocks: RowBlock[] = [];
  for await (const batch of recordOffsets(csv, ',', start))
    for (const row of batch) {
      const last = blocks[blocks.length - 1];
      if (last && last.rows < rowsPerShard) last.rows++;
      else blocks.push({ offset: row.offset, rows: 1 });
    }
  return blocks;
}

async function* scanBlock(
  csv: string,
  videos: string,
  columns: Columns,
  block: RowBlock,
  skipped: SkipCounts,
): AsyncGenerator<SampleRef> {
  let left = block.rows;
  if (left === 0) return;
  const rows = readDelimited(csv, ',', block.offset);
  try {
    for await (const row of rows) {
      const sample = await toSample(row.malformed ? [] : row.fields, videos, columns, skipped);
      if (sample) yield sample;
      if (--left === 0) break;
    }
  } catch {
    countSkip(skipped, 'unreadable file'); // the CSV went away or could not be read after start
  }
}

async function toSample(
  fields: Uint8Array[],
  videos: string,
  columns: Columns,
  skipped: SkipCounts,
): Promise<SampleRef | undefined> {
  if (fields.length <= Math.max(columns.videoid, columns.name)) return void countSkip(skipped, 'malformed row');
  const videoid = new TextDecoder().decode(fields[columns.videoid]).trim();
  if (videoid === '') return void countSkip(skipped, 'malformed row');
  const caption = decodeUtf8(fields[columns.name]);
  if (caption === undefined) return void countSkip(skipped, 'caption not UTF-8');
  if (caption.trim() === '') return void countSkip(skipped, 'missing caption');
  const pageDir =
    columns.pageDir >= 0 && fields[columns.pageDir] ? new TextDecoder().decode(fields[columns.pageDir]).trim() : '';
  const video = await findVideo(videos, videoid, pageDir);
  if (!video) return void countSkip(skipped, 'missing video');
  if (video.size === 0) return void countSkip(skipped, 'empty video');
  return {
    key: videoid,
    image: { path: video.path, offset: 0, size: video.size },
    caption: caption.trim(),
    label: -1,
    video: true,
  };
}

/** `<videos>/<videoid>.mp4`, else `<videos>/<page_dir>/<videoid>.mp4` (the layouts WebVid downloaders write). */
async function findVideo(
  videos: string,
  videoid: string,
  pageDir: string,
): Promise<{ path: string; size: number } | undefined> {
  const candidates = [join(videos, `${videoid}.mp4`), ...(pageDir ? [join(videos, pageDir, `${videoid}.mp4`)] : [])];
  for (const path of candidates) {
    const info = await stat(path).catch(() => undefined);
    if (info?.isFile()) return { path, size: info.size };
  }
  return undefined;
}
