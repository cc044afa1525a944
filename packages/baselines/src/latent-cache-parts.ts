import { existsSync, readdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DataError } from '@matryoshka-ts/core';
import {
  type LatentCache,
  type LatentEncodeFn,
  fillLatentCache,
  latentPartRange,
  openLatentCache,
} from './latent-cache.js';

// The part files of a sharded fill (`mdm-train cache --shard i/n`) and their merge into the cache.

/** A part's metadata file name: `part-<i>-of-<n>.json`. */
const PART_META = /^part-(\d+)-of-(\d+)\.json$/;

/** The parts found next to a cache: `part-<i>-of-<n>.json` files in its directory, sorted by n then i. */
export function latentCacheParts(dir: string): Array<{ index: number; count: number }> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const parts: Array<{ index: number; count: number }> = [];
  for (const name of names) {
    const m = PART_META.exec(name);
    if (m) parts.push({ index: Number(m[1]), count: Number(m[2]) });
  }
  return parts.sort((a, b) => a.count - b.count || a.index - b.index);
}

/** Deletes a part's files: records first, so a crash in between leaves a listed (empty) part, not a stray file. */
function removePart(part: LatentCache): void {
  for (const path of [part.dataPath, part.metaPath]) {
    try {
      unlinkSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

/** What `mergeLatentCacheParts` did, and what it could not do, for the caller to report. */
export interface LatentMergeReport {
  /** Parts folded into the cache (`i/n`), in sample order; their files are deleted. */
  merged: string[];
  /** Records copied from parts. */
  copied: number;
  /** Records encoded here, for samples before a part that no part covered (with `encode`). */
  encoded: number;
  /** Parts of a split not found whose samples the cache lacks (`i/n`, for each n whose parts were seen). */
  missing: string[];
  /** Parts found but not of this cache (other key, data set size, shape, range, or unreadable): never merged. */
  foreign: string[];
  /** Parts found but not complete (a worker still running, or one that stopped): `i/n: k of m records`. */
  incomplete: string[];
}

/**
 * Folds the parts of a sharded fill (`part-<i>-of-<n>` files in the cache's directory) into the
 * cache, in sample order: each complete part's records that follow the cache's last one are
 * appended (fsynced once per part) and the part's files are deleted. Records are copied exactly,
 * so the cache ends byte for byte as one process would have written it.
 *
 * The cache is append-only in sample order, so samples not covered by any part stop the merge
 * there, unless `encode` is given: then they are encoded here (a missing or unfinished part's
 * samples) and merging goes on. Parts are opened read-only, so a worker still writing one is
 * never disturbed (its part is reported incomplete). A part of another cache (its meta names
 * another key, size or shape) is reported in `foreign` and left alone.
 */
export async function mergeLatentCacheParts(
  cache: LatentCache,
  options: { encode?: LatentEncodeFn; batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<LatentMergeReport> {
  if (cache.part || cache.readOnly) throw new Error(`mergeLatentCacheParts: ${cache.metaPath} is not a writable cache`);
  const report: LatentMergeReport = { merged: [], copied: 0, encoded: 0, missing: [], foreign: [], incomplete: [] };
  const found = latentCacheParts(cache.dir);
  const root = dirname(cache.dir);
  const parts: LatentCache[] = [];
  for (const { index, count } of found) {
    const label = `${index}/${count}`;
    if (!(count >= 1 && index < count)) {
      report.foreign.push(`${label}: not a shard i/n with i < n`);
      continue;
    }
    try {
      const part = openLatentCache(root, {
        key: cache.key,
        count: cache.count,
        shape: cache.shape,
        part: latentPartRange(cache.count, index, count),
        readOnly: true,
      });
      parts.push(part);
    } catch (error) {
      if (!(error instanceof DataError)) throw error;
      report.foreign.push(`${label}: ${error.message}`);
    }
  }
  // A part not found whose samples the cache lacks (one merged earlier is deleted, not missing).
  for (const count of new Set(found.map((p) => p.count))) {
    for (let index = 0; index < count; index++) {
      const { from, to } = latentPartRange(cache.count, index, count);
      const absent = !found.some((p) => p.index === index && p.count === count);
      if (absent && to > from && to > cache.complete) report.missing.push(`${index}/${count}`);
    }
  }
  // Sample order; for parts of two splits starting together, the one reaching further first.
  parts.sort((a, b) => a.first - b.first || b.records - a.records);
  const done: LatentCache[] = [];
  for (const part of parts) {
    if (!part.done) report.incomplete.push(`${part.label}: ${part.complete} of ${part.records} records`);
    const end = part.first + part.records;
    let next = cache.first + cache.complete;
    if (end <= next) {
      // Already in the cache (merged before a crash kept the files, or an overlapping split).
      if (part.done) done.push(part);
      continue;
    }
    if (part.first > next) {
      if (!options.encode) break;
      report.encoded += await fillLatentCache(cache, options.encode, {
        batchSize: options.batchSize ?? 16,
        until: part.first,
        onProgress: options.onProgress,
      });
      next = cache.first + cache.complete;
    }
    // Records next … of the part's valid prefix; only what follows the cache's last record.
    for (let r = next - part.first; r < part.complete; r++) {
      const { mean, logvar } = part.read(r);
      cache.append(mean, logvar);
      report.copied++;
    }
    cache.flush();
    options.onProgress?.(cache.complete, cache.count);
    if (part.done) {
      report.merged.push(part.label);
      done.push(part);
    } else if (!options.encode) {
      break;
    }
  }
  // Deleted only once the records they gave are durable in the cache.
  for (const part of done) removePart(part);
  return report;
}
