import { DataError } from '@matryoshka-ts/core';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** How `expandSources` names what it looks for in its error messages. */
export interface ExpandWording {
  /** What an accepted path is, e.g. 'directory, .tar or image file' (default 'matching file or directory'). */
  what?: string;
  /** What the whole spec is, e.g. 'image source' (default 'source'). */
  label?: string;
}

/**
 * Expands a source spec into paths, in the order written: a comma-separated list of paths, each
 * with brace patterns (`shards/{00000..00999}.tar`, `{train,val}`) and `*` in the last path
 * component (`shards/*.tar`, sorted). Everything is checked here, before any data is read, so a run
 * fails at start: a missing path, a pattern that matches nothing, or a named path that `accept`
 * refuses throws an Error naming it. Glob matches that `accept` refuses (a README beside the
 * shards) are passed over silently.
 */
export function expandSources(spec: string, accept: (path: string) => boolean, wording: ExpandWording = {}): string[] {
  const what = wording.what ?? 'matching file or directory';
  const parts = splitOutsideBraces(spec)
    .map((part) => part.trim())
    .filter((part) => part !== '');
  if (parts.length === 0) throw new DataError(`no ${wording.label ?? 'source'} given: '${spec}'`);
  return parts
    .flatMap(expandBraces)
    .flatMap((path) => (path.includes('*') ? expandGlob(path, accept, what) : [checkPath(path, accept, what)]));
}

/** A stable description of a spec for source ids: each comma-separated part made absolute. */
export function specId(spec: string): string {
  return splitOutsideBraces(spec)
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => resolve(part))
    .join(',');
}

/** True for an existing directory (following links); never throws. */
export function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/** True for an existing regular file (following links; false for a dangling link); never throws. */
export function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
}

/** Splits at the commas that are not inside `{…}`, which belong to brace patterns. */
function splitOutsideBraces(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}') depth = Math.max(0, depth - 1);
    else if (text[i] === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** Expands every `{a..b}` (numeric, zero-padded like bash when an end is) and `{x,y}`, left to right. */
function expandBraces(pattern: string): string[] {
  const brace = /\{([^{}]*)\}/.exec(pattern);
  if (!brace) return [pattern];
  const head = pattern.slice(0, brace.index);
  const tail = pattern.slice(brace.index + brace[0].length);
  return braceAlternatives(brace[1], pattern).flatMap((alt) => expandBraces(head + alt + tail));
}

function braceAlternatives(body: string, pattern: string): string[] {
  const range = /^(\d+)\.\.(\d+)$/.exec(body);
  if (range) {
    const [from, to] = [Number(range[1]), Number(range[2])];
    const width = range[1].startsWith('0') || range[2].startsWith('0') ? Math.max(range[1].length, range[2].length) : 0;
    const step = from <= to ? 1 : -1;
    const out: string[] = [];
    for (let n = from; n !== to + step; n += step) out.push(String(n).padStart(width, '0'));
    return out;
  }
  if (body.includes(',')) return body.split(',');
  throw new DataError(`unsupported brace expression '{${body}}' in ${pattern} (use {a..b} or {x,y})`);
}

function checkPath(path: string, accept: (path: string) => boolean, what: string): string {
  if (!existsSync(path)) throw new DataError(`no such file or directory: ${path}`);
  if (!accept(path)) throw new DataError(`not a ${what}: ${path}`);
  return path;
}

function expandGlob(pattern: string, accept: (path: string) => boolean, what: string): string[] {
  const dir = dirname(pattern);
  if (dir.includes('*')) throw new DataError(`'*' is only supported in the last path component: ${pattern}`);
  if (!isDirectory(dir)) throw new DataError(`no such directory: ${dir} (in ${pattern})`);
  const matcher = globRegExp(basename(pattern));
  const paths = readdirSync(dir)
    .filter((entry) => matcher.test(entry))
    .sort()
    .map((entry) => join(dir, entry))
    .filter(accept);
  if (paths.length === 0) throw new DataError(`pattern matches no ${what}: ${pattern}`);
  return paths;
}

function globRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/\*/g, '.*')}$`);
}
