import { DataError } from '@matryoshka-ts/core';
import { type FileHandle, open } from 'node:fs/promises';
import { type ByteRange, type SkipCounts, countSkip } from './source.js';

/** A regular file inside a tar: its full name and where its data lies. */
export interface TarMember {
  /** The member's path, with GNU long names, ustar prefixes and pax `path` records applied. */
  name: string;
  /** Byte offset of the member's data in the tar file. */
  offset: number;
  size: number;
}

const BLOCK = 512;

/**
 * Lists the regular members of a tar (ustar, GNU and pax) in stored order, reading only the headers
 * and seeking over the data, so listing a shard of 1,000 images costs a few thousand 512-byte reads,
 * not the shard. A damaged archive is listed up to the damage, then counted once in `skipped` and
 * left; nothing here throws. Reasons: 'unreadable file' (cannot be opened), 'empty file' (0 bytes),
 * 'truncated tar' (a header or a member's data runs past the end), 'corrupt tar' (a bad header
 * checksum or size field). An archive of only end blocks is simply empty.
 */
export async function* scanTar(path: string, skipped: SkipCounts): AsyncGenerator<TarMember> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch {
    return countSkip(skipped, 'unreadable file');
  }
  try {
    const size = (await file.stat()).size;
    if (size === 0) return countSkip(skipped, 'empty file');
    yield* members(file, size, skipped);
  } finally {
    await file.close();
  }
}

async function* members(file: FileHandle, size: number, skipped: SkipCounts): AsyncGenerator<TarMember> {
  let offset = 0;
  let pending: PaxOverrides = {}; // from a GNU 'L' or pax 'x' entry, for the member after it
  // Ending at a block boundary without the zero blocks is accepted, as Python's tarfile does.
  while (offset < size) {
    const header = await readAt(file, offset, BLOCK);
    if (header.length < BLOCK) return countSkip(skipped, 'truncated tar');
    if (header.every((b) => b === 0)) return; // tar writes two zero blocks; the first is enough
    const entry = parseTarHeader(header);
    if (!entry) return countSkip(skipped, 'corrupt tar');
    const start = offset + BLOCK;
    const metadata = entry.type === 'L' || entry.type === 'x' || entry.type === 'g';
    const dataSize = metadata ? entry.size : (pending.size ?? entry.size);
    if (start + dataSize > size) return countSkip(skipped, 'truncated tar');
    offset = start + Math.ceil(dataSize / BLOCK) * BLOCK;

    if (entry.type === 'L') pending = { ...pending, path: cString(await readAt(file, start, entry.size)) };
    else if (entry.type === 'x') pending = { ...pending, ...paxOverrides(await readAt(file, start, entry.size)) };
    else if (entry.type === 'g')
      continue; // global pax headers never carry a member's own name
    else {
      const name = pending.path ?? entry.name;
      pending = {};
      if (entry.type === 'file') yield { name, offset: start, size: dataSize };
    }
  }
}

/**
 * Reads `range` from its file: a whole file (offset 0, its size) or a tar member. Throws when the
 * file cannot be read or is shorter than the range (changed since it was listed); callers count it.
 */
export async function readRange(range: ByteRange): Promise<Uint8Array> {
  const file = await open(range.path, 'r');
  try {
    const bytes = await readAt(file, range.offset, range.size);
    if (bytes.length < range.size) {
      const where = `${bytes.length} of ${range.size} bytes at offset ${range.offset}`;
      throw new DataError(`${range.path}: ${where} (file truncated?)`);
    }
    return bytes;
  } finally {
    await file.close();
  }
}

/** Up to `length` bytes at `position`; fewer only at the end of the file. */
export async function readAt(file: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buffer.subarray(0, done);
}

interface TarHeader {
  name: string;
  size: number;
  /** 'file' for regular files; 'L' / 'x' / 'g' for name-bearing metadata; 'other' for the rest (dirs, links…). */
  type: 'file' | 'L' | 'x' | 'g' | 'other';
}

/** What a GNU long name or a pax header says about the next member. */
interface PaxOverrides {
  path?: string;
  /** pax `size`, used for members of 8 GiB and more where the header field cannot hold it. */
  size?: number;
}

/** Parses a ustar/GNU header; undefined when the checksum or the size field is not valid. */
function parseTarHeader(header: Uint8Array): TarHeader | undefined {
  const checksum = parseOctal(header.subarray(148, 156));
  if (checksum === undefined || checksum !== headerChecksum(header)) return undefined;
  const size = parseSize(header.subarray(124, 136));
  if (size === undefined) return undefined;
  const flag = String.fromCharCode(header[156]);
  const type =
    flag === '0' || flag === '\0' || flag === '7'
      ? 'file'
      : flag === 'L' || flag === 'x' || flag === 'g'
        ? flag
        : 'other';
  // Only POSIX ustar ("ustar\0") has a prefix field; old GNU headers keep other data at that offset.
  const posix = cString(header.subarray(257, 263)) === 'ustar' && header[262] === 0;
  const prefix = posix ? cString(header.subarray(345, 500)) : '';
  const name = cString(header.subarray(0, 100));
  return { name: prefix ? `${prefix}/${name}` : name, size, type };
}

/** Sum of the header bytes with the checksum field counted as spaces. */
function headerChecksum(header: Uint8Array): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += header[i];
  return sum;
}

/** Octal (NUL/space padded), or GNU base-256 for members of 8 GiB and more. */
function parseSize(field: Uint8Array): number | undefined {
  if (!(field[0] & 0x80)) return parseOctal(field);
  let n = field[0] & 0x7f;
  for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
  return n;
}

function parseOctal(field: Uint8Array): number | undefined {
  const text = new TextDecoder('latin1')
    .decode(field)
    .replace(/[\0 ]+$/, '')
    .trim();
  return /^[0-7]*$/.test(text) ? parseInt(text || '0', 8) : undefined;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** The `path` and `size` records of a pax extended header ("<length> key=value\n" records; lengths in bytes). */
function paxOverrides(data: Uint8Array): PaxOverrides {
  const out: PaxOverrides = {};
  for (let pos = 0; pos < data.length; ) {
    const space = data.indexOf(0x20, pos);
    const length = space < 0 ? NaN : Number(new TextDecoder().decode(data.subarray(pos, space)));
    if (!(length > 0)) break;
    const record = new TextDecoder().decode(data.subarray(space + 1, pos + length - 1));
    if (record.startsWith('path=')) out.path = record.slice(5);
    else if (record.startsWith('size=') && /^\d+$/.test(record.slice(5))) out.size = Number(record.slice(5));
    pos += length;
  }
  return out;
}
