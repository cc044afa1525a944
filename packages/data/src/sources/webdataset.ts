import { DataError } from '@matryoshka-ts/core';
import { readdirSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { IMAGE_EXTENSIONS, splitKey } from './names.js';
import { expandSources, isDirectory, isFile, specId } from './patterns.js';
import { type SampleRef, type ShardedSource, type SkipCounts, countSkip } from './source.js';
import { type TarMember, readAt, scanTar } from './tar.js';
import { decodeUtf8 } from './text.js';

export interface WebdatasetOptions {
  /**
   * The shards: a folder of `.tar` files (img2dataset's output folder), a glob (`cc12m/*.tar`), a
   * brace pattern (`cc12m/{00000..01242}.tar`), or a comma list of those.
   */
  path: string;
}

const TAR = /\.tar$/i;
/** No real caption is this long; a bigger `.txt` member is not read into memory. */
const MAX_CAPTION_BYTES = 1 << 16;

/**
 * img2dataset's `webdataset` output (CC12M, CC3M, LAION …): numbered `.tar` shards whose members
 * are `<key>.jpg` (or .jpeg/.png/.webp), `<key>.txt` (the caption) and `<key>.json` (metadata,
 * unused). Consecutive members with the same key form a sample, as webdataset groups them. Shards
 * are listed at start (a missing path or a pattern matching nothing throws); a sample without an
 * image, without a caption or with a caption that is not UTF-8 is skipped and counted.
 */
export async function webdatasetSource(options: WebdatasetOptions): Promise<ShardedSource> {
  const shards = tarShards(options.path);
  return {
    id: `cc12m-webdataset:${specId(options.path)}`,
    kind: 'cc12m',
    shards,
    classNames: [],
    scan(index: number, skipped: SkipCounts): AsyncIterable<SampleRef> {
      const shard = shards[index];
      if (shard === undefined) throw new RangeError(`webdataset: no shard ${index} (${shards.length} shards)`);
      return scanShard(shard, skipped);
    },
  };
}

/** The `.tar` files of the spec (a folder stands for the tars directly in it), sorted and unique. */
export function tarShards(spec: string): string[] {
  const isTar = (p: string) => isFile(p) && TAR.test(p);
  const paths = expandSources(spec, (p) => isDirectory(p) || isTar(p), {
    what: 'directory or .tar file',
    label: 'shard path',
  });
  const shards = paths.flatMap((path) => {
    if (!isDirectory(path)) return [path];
    const tars = readdirSync(path)
      .map((entry) => join(path, entry))
      .filter(isTar);
    if (tars.length === 0) throw new DataError(`no .tar files in ${path}`);
    return tars;
  });
  return [...new Set(shards)].sort();
}

/** Members of one sample: extension → member. */
type Group = { key: string; members: Map<string, TarMember> };

async function* scanShard(path: string, skipped: SkipCounts): AsyncGenerator<SampleRef> {
  let file: FileHandle | undefined; // for the captions, opened once the listing shows there is a tar to read
  try {
    let group: Group | undefined;
    for await (const member of scanTar(path, skipped)) {
      const { key, ext } = splitKey(member.name);
      if (group && group.key === key) {
        group.members.set(ext, member);
        continue;
      }
      if (group) {
        file ??= await open(path, 'r');
        const sample = await toSample(path, file, group, skipped);
        if (sample) yield sample;
      }
      group = { key, members: new Map([[ext, member]]) };
    }
    // The last group; after a truncation its members are still whole (scanTar yields none that are cut).
    if (group) {
      file ??= await open(path, 'r');
      const sample = await toSample(path, file, group, skipped);
      if (sample) yield sample;
    }
  } finally {
    await file?.close();
  }
}

/** A sample from a group, or undefined (counted) when its image or caption is missing or bad. */
async function toSample(
  path: string,
  file: FileHandle,
  group: Group,
  skipped: SkipCounts,
): Promise<SampleRef | undefined> {
  const image = IMAGE_EXTENSIONS.map((ext) => group.members.get(ext)).find((m) => m !== undefined);
  if (!image) return void countSkip(skipped, 'missing image');
  if (image.size === 0) return void countSkip(skipped, 'empty image');
  const text = group.members.get('txt');
  if (!text) return void countSkip(skipped, 'missing caption');
  if (text.size > MAX_CAPTION_BYTES) return void countSkip(skipped, 'caption too long');
  const bytes = await readAt(file, text.offset, text.size);
  const caption = decodeUtf8(bytes);
  if (caption === undefined) return void countSkip(skipped, 'caption not UTF-8');
  if (caption.trim() === '') return void countSkip(skipped, 'missing caption');
  return {
    key: group.key,
    image: { path, offset: image.offset, size: image.size },
    caption: caption.trim(),
    label: -1,
  };
}
