import { DataError } from '@matryoshka-ts/core';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { isImageName, stem } from './names.js';
import { expandSources, isDirectory, isFile, specId } from './patterns.js';
import { type SampleRef, type ShardedSource, type SkipCounts, countSkip } from './source.js';
import { scanTar } from './tar.js';

export interface ImagenetOptions {
  /**
   * A folder of synset folders (`train/n01440764/*.JPEG`) or of synset tars (`train/n01440764.tar`),
   * or a glob / brace pattern / comma list of synset folders or tars.
   */
  path: string;
  /**
   * File fixing the label order: one wnid per line, label = line index (blank lines ignored).
   * `LOC_synset_mapping.txt` lines ("n01440764 tench, Tinca tinca") are accepted and also give names.
   * Default: labels in sorted wnid order of the synsets found.
   */
  synsets?: string;
  /**
   * Class names for captions: lines "wnid name, other name" (LOC_synset_mapping.txt), one name per
   * line in label order, or a JSON class index (`{"0": ["n01440764", "tench"], …}`). The first
   * comma-separated name is used.
   */
  classNames?: string;
}

export interface ImagenetSource extends ShardedSource {
  readonly kind: 'imagenet';
  /** The wnid of each label. */
  readonly wnids: readonly string[];
}

const TAR = /\.tar$/i;

/**
 * ImageNet in its standard training layout, one shard per synset folder or synset tar. Labels are
 * the index of the synset in the `synsets` file if given, else in sorted wnid order (torchvision's
 * ImageFolder order); captions are the class names when known, else empty. Any folder-per-class
 * data set (ImageNet-21k, ImageFolder layouts) reads the same way. Everything is checked at start.
 */
export async function imagenetSource(options: ImagenetOptions): Promise<ImagenetSource> {
  const shards = synsetShards(options.path);
  const found = [...new Set(shards.map(wnidOf))].sort();
  const listed = options.synsets ? readSynsets(options.synsets) : undefined;
  const wnids = listed ? listed.wnids : found;
  const labelOf = new Map(wnids.map((w, i) => [w, i]));
  for (const shard of shards)
    if (!labelOf.has(wnidOf(shard))) {
      throw new DataError(`imagenet: synset ${wnidOf(shard)} (${shard}) is not in the synsets file ${options.synsets}`);
    }
  const names = options.classNames ? readClassNames(options.classNames, wnids) : listed?.names;
  const captions = wnids.map((w) => names?.get(w) ?? '');
  return {
    id: `imagenet:${specId(options.path)}${options.synsets ? `;synsets=${resolve(options.synsets)}` : ''}`,
    kind: 'imagenet',
    shards,
    wnids,
    classNames: names ? captions : wnids,
    scan(index: number, skipped: SkipCounts): AsyncIterable<SampleRef> {
      const shard = shards[index];
      if (shard === undefined) throw new RangeError(`imagenet: no shard ${index} (${shards.length} shards)`);
      const wnid = wnidOf(shard);
      const meta = { wnid, label: labelOf.get(wnid)!, caption: captions[labelOf.get(wnid)!] };
      return isDirectory(shard) ? scanFolder(shard, meta, skipped) : scanSynsetTar(shard, meta, skipped);
    },
  };
}

/** The synset folders and tars under the spec, sorted and unique. */
function synsetShards(spec: string): string[] {
  const accept = (p: string) => isDirectory(p) || (isFile(p) && TAR.test(p));
  const paths = expandSources(spec, accept, { what: 'directory or .tar file', label: 'ImageNet path' });
  const shards = paths.flatMap((path) => {
    if (!isDirectory(path)) return [path];
    const children = readdirSync(path)
      .map((entry) => join(path, entry))
      .filter(accept);
    if (children.length > 0) return children; // a root: train/ holding synset folders or tars
    if (readdirSync(path).some(isImageName)) return [path]; // itself a synset folder
    throw new DataError(`imagenet: no synset folders, synset .tar files or images in ${path}`);
  });
  return [...new Set(shards)].sort();
}

/** `train/n01440764` or `train/n01440764.tar` → `n01440764`. */
function wnidOf(shard: string): string {
  return TAR.test(shard) ? basename(shard).slice(0, -4) : basename(shard);
}

/** A synset list: wnids in label order, with names where the lines carry them (LOC_synset_mapping style). */
function readSynsets(path: string): { wnids: string[]; names?: Map<string, string> } {
  const lines = readLines(path, 'synsets file');
  const wnids: string[] = [];
  const names = new Map<string, string>();
  for (const line of lines) {
    const [wnid, rest] = splitFirstWord(line);
    if (wnids.includes(wnid)) throw new DataError(`imagenet: synset ${wnid} is listed twice in ${path}`);
    wnids.push(wnid);
    if (rest) names.set(wnid, firstName(rest));
  }
  if (wnids.length === 0) throw new DataError(`imagenet: the synsets file ${path} lists no synsets`);
  return { wnids, names: names.size > 0 ? names : undefined };
}

/** wnid → class name from a mapping file, a names-in-label-order file, or a JSON class index. */
function readClassNames(path: string, wnids: string[]): Map<string, string> {
  const text = readText(path, 'class-name file');
  if (/^\s*[[{]/.test(text)) return classNamesFromJson(text, path, wnids);
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const known = new Set(wnids);
  // Mapping lines start with a wnid (the file may list more synsets than are used); otherwise line k
  // is the name of label k.
  if (lines.some((l) => known.has(splitFirstWord(l)[0])))
    return new Map(lines.map((l) => [splitFirstWord(l)[0], firstName(splitFirstWord(l)[1])]));
  if (lines.length < wnids.length) {
    throw new DataError(`imagenet: the class-name file ${path} has ${lines.length} names for ${wnids.length} classes`);
  }
  return new Map(wnids.map((w, i) => [w, firstName(lines[i])]));
}

/** Keras' `imagenet_class_index.json` (`{"0": ["n01440764", "tench"]}`) or a JSON array of names in label order. */
function classNamesFromJson(text: string, path: string, wnids: string[]): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new DataError(`imagenet: the class-name file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (Array.isArray(json)) {
    if (json.length < wnids.length) {
      throw new DataError(`imagenet: the class-name file ${path} has ${json.length} names for ${wnids.length} classes`);
    }
    return new Map(wnids.map((w, i) => [w, firstName(String(json[i]))]));
  }
  const pairs = Object.values(json as Record<string, unknown>).filter(
    (v): v is [string, string] => Array.isArray(v) && v.length >= 2,
  );
  if (pairs.length === 0) {
    throw new DataError(
      `imagenet: the class-name file ${path} is neither a JSON array of names nor a {"0": [wnid, name]} class index`,
    );
  }
  return new Map(pairs.map(([w, n]) => [String(w), firstName(String(n).replace(/_/g, ' '))]));
}

function readText(path: string, what: string): string {
  if (!existsSync(path)) throw new DataError(`imagenet: no such ${what}: ${path}`);
  return readFileSync(path, 'utf8');
}

function readLines(path: string, what: string): string[] {
  return readText(path, what)
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

function splitFirstWord(line: string): [string, string] {
  const match = /^(\S+)\s*(.*)$/.exec(line.trim());
  return match ? [match[1], match[2]] : ['', ''];
}

/** "tench, Tinca tinca" → "tench". */
function firstName(names: string): string {
  return names.split(',')[0].trim();
}

interface SynsetMeta {
  wnid: string;
  label: number;
  caption: string;
}

/** A synset folder's images in name order; sizes come from stat, no image is read. */
async function* scanFolder(dir: string, meta: SynsetMeta, skipped: SkipCounts): AsyncGenerator<SampleRef> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter(isImageName).sort();
  } catch {
    return countSkip(skipped, 'unreadable file');
  }
  for (const name of names) {
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) {
      countSkip(skipped, 'unreadable file');
      continue;
    }
    if (info.size === 0) {
      countSkip(skipped, 'empty image');
      continue;
    }
    yield {
      key: `${meta.wnid}/${stem(name)}`,
      image: { path, offset: 0, size: info.size },
      caption: meta.caption,
      label: meta.label,
    };
  }
}

/** A synset tar's image members in stored order (ImageNet's tars are written in name order). */
async function* scanSynsetTar(path: string, meta: SynsetMeta, skipped: SkipCounts): AsyncGenerator<SampleRef> {
  for await (const member of scanTar(path, skipped)) {
    if (!isImageName(member.name)) continue;
    if (member.size === 0) {
      countSkip(skipped, 'empty image');
      continue;
    }
    yield {
      key: `${meta.wnid}/${stem(member.name)}`,
      image: { path, offset: member.offset, size: member.size },
      caption: meta.caption,
      label: meta.label,
    };
  }
}
