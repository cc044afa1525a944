import { DataError } from '@matryoshka-ts/core';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type DelimitedRow, readDelimited, readHeader } from './delimited.js';
import { stem } from './names.js';
import { isFile } from './patterns.js';
import { type SampleRef, type ShardedSource, type SkipCounts, countSkip } from './source.js';
import { type TarMember, scanTar } from './tar.js';
import { decodeUtf8 } from './text.js';

export interface Cc12mTsvOptions {
  /**
   * The index TSV (header `filename`; one shard TSV per row, relative to the index's folder), e.g.
   * `training_0.tsv`.
   */
  index: string;
}

/** Tar listings kept between scans; a shard TSV normally names one tar, so a few suffice. */
const CACHED_TARS = 8;

/**
 * CC12M as the official code lays it out (ml-mdm `scrape_cc12m.py`, read by mlx-data): an index TSV
 * listing shard TSVs, each with the columns `tar`, `file`, `caption` (extra columns ignored); a row's
 * image is member `file` of tar `tar`, found through a header-only listing of the tar. Each shard
 * TSV is a shard. `tar` paths are taken relative to the shard TSV's folder, or — where no such file
 * exists — to the index's folder, as `scrape_cc12m.py` writes them relative to its working folder
 * (where it also writes the index). The index, every shard TSV and their headers are checked at
 * start; a row whose tar or member is missing, or whose caption is empty or not UTF-8, is skipped and
 * counted.
 */
export async function cc12mTsvSource(options: Cc12mTsvOptions): Promise<ShardedSource> {
  const index = options.index;
  const shards = await shardTsvs(index);
  const tars = new TarListings(CACHED_TARS);
  return {
    id: `cc12m-tsv:${resolve(index)}`,
    kind: 'cc12m',
    shards,
    classNames: [],
    scan(i: number, skipped: SkipCounts): AsyncIterable<SampleRef> {
      const shard = shards[i];
      if (shard === undefined) throw new RangeError(`cc12m: no shard ${i} (${shards.length} shards)`);
      return scanShardTsv(shard, dirname(index), tars, skipped);
    },
  };
}

/** The shard TSVs the index lists (resolved, sorted, unique), each checked to exist and to have the columns. */
async function shardTsvs(index: string): Promise<string[]> {
  if (!isFile(index)) throw new DataError(`cc12m: no such index file: ${index}`);
  const header = await readHeader(index, '\t');
  const column = header?.names.indexOf('filename') ?? -1;
  if (!header || column < 0) {
    const found = header?.names.join('\\t') ?? '';
    throw new DataError(`cc12m: ${index} is not an index TSV: its header is '${found}', expected 'filename'`);
  }
  const shards: string[] = [];
  for await (const row of readDelimited(index, '\t', header.end)) {
    const name = row.malformed ? undefined : new TextDecoder().decode(row.fields[column] ?? new Uint8Array()).trim();
    if (!name) continue;
    const path = resolve(dirname(index), name);
    if (!isFile(path)) throw new DataError(`cc12m: shard TSV ${name} listed in ${index} not found: ${path}`);
    shards.push(path);
  }
  if (shards.length === 0) throw new DataError(`cc12m: the index ${index} lists no shard TSVs`);
  const unique = [...new Set(shards)].sort();
  for (const shard of unique) await shardColumns(shard);
  return unique;
}

interface Columns {
  tar: number;
  file: number;
  caption: number;
  /** Where the rows start. */
  end: number;
}

async function shardColumns(tsv: string): Promise<Columns> {
  const header = await readHeader(tsv, '\t');
  const names = header?.names ?? [];
  const [tar, file, caption] = ['tar', 'file', 'caption'].map((c) => names.indexOf(c));
  if (!header || tar < 0 || file < 0 || caption < 0)
    throw new DataError(
      `cc12m: ${tsv} is not a shard TSV: its header is '${names.join('\\t')}', expected the columns tar, file, caption`,
    );
  return { tar, file, caption, end: header.end };
}

async function* scanShardTsv(
  tsv: string,
  indexDir: string,
  tars: TarListings,
  skipped: SkipCounts,
): AsyncGenerator<SampleRef> {
  let rows: AsyncGenerator<DelimitedRow>;
  let columns: Columns;
  try {
    columns = await shardColumns(tsv);
    rows = readDelimited(tsv, '\t', columns.end);
  } catch {
    return countSkip(skipped, 'unreadable file');
  }
  const tarPaths = new Map<string, string | undefined>(); // the tar column as written → existing file
  const counted = new Set<string>(); // tars whose own damage is already counted in this scan
  for await (const row of rows) {
    const fields = row.malformed ? [] : row.fields;
    if (fields.length <= Math.max(columns.tar, columns.file, columns.caption)) {
      countSkip(skipped, 'malformed row');
      continue;
    }
    const text = (k: number) => new TextDecoder().decode(fields[k]);
    const written = text(columns.tar);
    if (!tarPaths.has(written)) tarPaths.set(written, locateTar(written, dirname(tsv), indexDir));
    const tar = tarPaths.get(written);
    if (!tar) {
      countSkip(skipped, 'missing tar');
      continue;
    }
    const listing = await tars.get(tar);
    if (!counted.has(tar)) {
      counted.add(tar);
      for (const [reason, n] of Object.entries(listing.skipped)) countSkip(skipped, reason, n);
    }
    const sample = toSample(tar, listing.members.get(text(columns.file)), fields[columns.caption], skipped);
    if (sample) yield sample;
  }
}

/** A row's sample, or undefined (counted) when its member is missing or empty or its caption unusable. */
function toSample(
  tar: string,
  member: TarMember | undefined,
  captionBytes: Uint8Array,
  skipped: SkipCounts,
): SampleRef | undefined {
  if (!member) return void countSkip(skipped, 'missing member');
  if (member.size === 0) return void countSkip(skipped, 'empty image');
  const caption = decodeUtf8(captionBytes);
  if (caption === undefined) return void countSkip(skipped, 'caption not UTF-8');
  if (caption.trim() === '') return void countSkip(skipped, 'missing caption');
  return {
    key: stem(member.name),
    image: { path: tar, offset: member.offset, size: member.size },
    caption: caption.trim(),
    label: -1,
  };
}

/** The tar a row names: absolute as is; else relative to the shard TSV's folder, then to the index's. */
function locateTar(written: string, tsvDir: string, indexDir: string): string | undefined {
  if (written === '') return undefined;
  if (isAbsolute(written)) return existsSync(written) ? written : undefined;
  return [resolve(tsvDir, written), resolve(indexDir, written)].find(isFile);
}

interface TarListing {
  members: Map<string, TarMember>;
  /** What listing the tar counted (a truncation …), added to each scan that uses it. */
  skipped: SkipCounts;
}

/** Header-only tar listings by path, the most recently used kept. */
class TarListings {
  private readonly cache = new Map<string, Promise<TarListing>>();
  constructor(private readonly capacity: number) {}

  get(path: string): Promise<TarListing> {
    let listing = this.cache.get(path);
    if (listing)
      this.cache.delete(path); // re-inserted below: Map order is recency
    else listing = listTar(path);
    this.cache.set(path, listing);
    if (this.cache.size > this.capacity) this.cache.delete(this.cache.keys().next().value!);
    return listing;
  }
}

async function listTar(path: string): Promise<TarListing> {
  const skipped: SkipCounts = {};
  const members = new Map<string, TarMember>();
  for await (const member of scanTar(path, skipped)) members.set(member.name, member);
  return { members, skipped };
}
