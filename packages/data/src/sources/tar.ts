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

/** A member with its data, as `readTar` gives it. */
export interface TarEntry extends TarMember {
  data: Uint8Array;
}

/** Everything `readTar` found: the regular members in stored order, and what was skipped by reason. */
export interface TarContents {
  members: TarEntry[];
  skipped: SkipCounts;
}

/**
 * Reads up to `length` bytes at `position` of a tar of known size: fewer only at its end; it may
 * throw on an I/O error (`tarMembers` counts that as 'unreadable file').
 */
export type TarRead = (position: number, length: number) => Promise<Uint8Array>;

const BLOCK = 512;
/**
 * The most bytes a GNU long name or a pax extended header may hold; real ones hold a path or a few
 * records (well under a kilobyte). A bigger one is counted as 'corrupt tar' rather than read into
 * memory, so a damaged size field cannot make the listing allocate a large part of the shard.
 */
export const MAX_TAR_METADATA_BYTES = 1 << 20;

/**
 * Lists the regular members of a tar (ustar, GNU and pax) in stored order, reading only the headers
 * and seeking over the data, so listing a shard of 1,000 images costs a few thousand 512-byte reads,
 * not the shard. A damaged archive is listed up to the damage, then counted once in `skipped` and
 * left; nothing here throws. Reasons: 'unreadable file' (cannot be opened or read, or not a regular
 * file), 'empty file' (0 bytes), 'truncated tar' (a header or a member's data runs past the end, or
 * the archive ends after a long name or pax header, before the member it names), 'corrupt tar' (a
 * bad header checksum or size field, a malformed pax header, a long name or pax header over
 * `MAX_TAR_METADATA_BYTES`); an archive that ends without its end-of-archive zero blocks also counts
 * as 'truncated tar' (its members up to the cut are listed). An archive of only end blocks is simply
 * empty. Every header's checksum is checked, so a damaged header is never read as another name or
 * size; damage inside a member's data cannot be detected (tar has no data checksum) and is left to
 * the decoder.
 */
export async function* scanTar(path: string, skipped: SkipCounts): AsyncGenerator<TarMember> {
  const tar = await openTar(path, skipped);
  if (!tar) return;
  try {
    yield* tarMembers(tar.read, tar.size, skipped);
  } finally {
    await tar.file.close();
  }
}

/**
 * Reads every regular member of a tar — a file (`path`) or its bytes — with its data: the listing
 * of `scanTar` (same names, same skip reasons, counted in the `skipped` it returns), then each
 * listed member's data. Memory is at most the archive's size: no member is read that does not lie
 * whole inside the archive, whatever its header claims. From bytes the members' `data` are views
 * into them and nothing throws; from a file, only a read that fails or comes back short after the
 * listing (the file changed meanwhile) throws, as a DataError naming the file.
 */
export async function readTar(source: string | Uint8Array): Promise<TarContents> {
  const skipped: SkipCounts = {};
  const members: TarEntry[] = [];
  if (typeof source !== 'string') {
    const read: TarRead = async (position, length) => source.subarray(position, position + length);
    for await (const m of tarMembers(read, source.length, skipped))
      members.push({ ...m, data: source.subarray(m.offset, m.offset + m.size) });
    return { members, skipped };
  }
  const tar = await openTar(source, skipped);
  if (!tar) return { members, skipped };
  try {
    for await (const m of tarMembers(tar.read, tar.size, skipped)) {
      let data: Uint8Array;
      try {
        data = await tar.read(m.offset, m.size);
      } catch (error) {
        throw new DataError(`${source}: cannot read tar member ${m.name}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      if (data.length < m.size)
        throw new DataError(
          `${source}: tar member ${m.name} ends early (${data.length} of ${m.size} bytes; file changed?)`,
        );
      members.push({ ...m, data });
    }
  } finally {
    await tar.file.close();
  }
  return { members, skipped };
}

/** The open tar file, its size and a reader; undefined (counted) when it cannot be read. */
async function openTar(
  path: string,
  skipped: SkipCounts,
): Promise<{ file: FileHandle; size: number; read: TarRead } | undefined> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch {
    return void countSkip(skipped, 'unreadable file');
  }
  // A folder opens for reading on Linux, but its reads fail (EISDIR).
  const info = await file.stat().catch(() => undefined);
  if (info?.isFile()) return { file, size: info.size, read: (position, length) => readAt(file, position, length) };
  await file.close().catch(() => undefined);
  return void countSkip(skipped, 'unreadable file');
}

/**
 * The regular members of a tar of `size` bytes read through `read` (the listing behind `scanTar`
 * and `readTar`, for any storage): reads only headers, long names and pax headers — each at most
 * `MAX_TAR_METADATA_BYTES` — never member data. Skips and stops as `scanTar` describes; a read that
 * throws is counted as 'unreadable file'.
 */
export async function* tarMembers(read: TarRead, size: number, skipped: SkipCounts): AsyncGenerator<TarMember> {
  let offset = 0;
  let pending: PaxOverrides | undefined; // from a GNU 'L' or pax 'x' entry, for the member after it
  const readOr = (position: number, length: number) => read(position, length).catch(() => undefined);
  if (size === 0) return countSkip(skipped, 'empty file');
  let ended = false;
  while (offset < size) {
    const header = await readOr(offset, BLOCK);
    if (!header) return countSkip(skipped, 'unreadable file');
    // Tar writes two zero blocks at the end; the first is enough, and so is the start of one.
    if (header.length > 0 && isZero(header)) {
      ended = true;
      break;
    }
    if (header.length < BLOCK) return countSkip(skipped, 'truncated tar');
    const entry = parseTarHeader(header);
    if (!entry) return countSkip(skipped, 'corrupt tar');
    const start = offset + BLOCK;
    const metadata = entry.type === 'L' || entry.type === 'x' || entry.type === 'g';
    const dataSize = metadata ? entry.size : (pending?.size ?? entry.size);
    if (start + dataSize > size) return countSkip(skipped, 'truncated tar');
    offset = start + Math.ceil(dataSize / BLOCK) * BLOCK;

    if (entry.type === 'g') continue; // global pax headers never carry a member's own name
    if (entry.type === 'L' || entry.type === 'x') {
      if (entry.size > MAX_TAR_METADATA_BYTES) return countSkip(skipped, 'corrupt tar');
      const data = await readOr(start, entry.size);
      if (!data) return countSkip(skipped, 'unreadable file');
      if (data.length < entry.size) return countSkip(skipped, 'truncated tar');
      const more = entry.type === 'L' ? { path: cString(data) } : paxOverrides(data);
      if (!more) return countSkip(skipped, 'corrupt tar');
      pending = { ...pending, ...more };
      continue;
    }
    const name = pending?.path ?? entry.name;
    pending = undefined;
    if (entry.type === 'file') yield { name, offset: start, size: dataSize };
  }
  // No end blocks: the file was cut (at a member boundary, or in a member's padding), and the
  // members after the cut are lost; counted, though Python's tarfile accepts such a file silently.
  // So is a long name or pax header whose member never came.
  if (!ended || pending) countSkip(skipped, 'truncated tar');
}

function isZero(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
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

/** Octal (NUL/space padded), or GNU base-256 for members of 8 GiB and more (negative ones: undefined). */
function parseSize(field: Uint8Array): number | undefined {
  if (!(field[0] & 0x80)) return parseOctal(field);
  if (field[0] & 0x40) return undefined; // base-256 sign bit: a negative size
  let n = field[0] & 0x7f;
  for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
  return n;
}

function parseOctal(field: Uint8Array): number | undefined {
  const text = latin1(field)
    .replace(/[\0 ]+$/, '')
    .trim();
  return /^[0-7]*$/.test(text) ? parseInt(text || '0', 8) : undefined;
}

const latin1 = (bytes: Uint8Array) => new TextDecoder('latin1').decode(bytes);

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/**
 * The `path` and `size` records of a pax extended header ("<length> key=value\n" records, the length
 * in decimal bytes counting the whole record); undefined when a record is malformed (a length that
 * is not decimal digits, runs past the data or does not end at a newline; no key; a `size` that is
 * not decimal digits). NUL padding after the last record is allowed.
 */
function paxOverrides(data: Uint8Array): PaxOverrides | undefined {
  const out: PaxOverrides = {};
  let pos = 0;
  while (pos < data.length && data[pos] !== 0) {
    const space = data.subarray(pos, pos + 20).indexOf(0x20); // the length has at most 19 digits
    if (space <= 0) return undefined;
    const digits = latin1(data.subarray(pos, pos + space));
    const length = /^\d+$/.test(digits) ? Number(digits) : Number.NaN;
    // The shortest record is "<digits> k=\n".
    if (!(length >= space + 4 && pos + length <= data.length) || data[pos + length - 1] !== 0x0a) return undefined;
    const record = new TextDecoder().decode(data.subarray(pos + space + 1, pos + length - 1));
    if (record.indexOf('=') <= 0) return undefined;
    if (record.startsWith('path=')) out.path = record.slice(5);
    else if (record.startsWith('size=')) {
      if (!/^\d+$/.test(record.slice(5))) return undefined;
      out.size = Number(record.slice(5));
    }
    pos += length;
  }
  return out;
}
