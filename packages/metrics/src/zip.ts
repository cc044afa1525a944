/**
 * The subset of the ZIP format that .npz files use. Reading: STORED and DEFLATED members, ZIP64
 * sizes and offsets (numpy's `savez` always writes ZIP64 local headers), CRC-32 checked; every
 * field that points or counts is checked against the file, and a member's declared size against
 * what its compressed bytes can hold, so that damage is refused (DataError) rather than read
 * differently, and inflating never goes past the declared size. Writing:
 * STORED (or DEFLATED) members with their CRC-32, no ZIP64 (so at most 4 GiB), fixed timestamps
 * (1980-01-01) so the same arrays always give the same bytes.
 */

import * as zlib from 'node:zlib';
import { DataError, crc32Portable } from '@matryoshka-ts/core';
import { printable } from './printable.js';

const LOCAL = 0x04034b50;
const CENTRAL = 0x02014b50;
const END = 0x06054b50;
const END64 = 0x06064b50;
const END64_LOCATOR = 0x07064b50;
const U32 = 0xffffffff;

/** CRC-32 (ISO 3309, as ZIP and zlib use it). node:zlib's when the runtime has it (Node ≥ 20.15). */
export function crc32(bytes: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (data: Uint8Array) => number }).crc32;
  if (typeof native === 'function') return native(bytes) >>> 0;
  return crc32Portable(bytes);
}

export interface ZipMember {
  name: string;
  data: Uint8Array;
}

/** A member as the central directory describes it, its data not yet read (see `zipEntryData`). */
export interface ZipEntry {
  name: string;
  /** 0: stored, 8: deflated. */
  method: 0 | 8;
  /** The uncompressed size the archive declares (checked when the data is read). */
  size: number;
  crc: number;
  /** The member's data as stored in the archive (compressed for method 8). */
  raw: Uint8Array;
}

/**
 * The largest member read: 2 GiB, what Node's readFileSync reads at most, so that compression
 * cannot make a member larger than an uncompressed file could be.
 */
const MAX_SIZE = 2 ** 31;
/** Deflate spends at least 2 bits on a 258-byte match, so no stream inflates more than 1032-fold. */
const MAX_RATIO = 1032;

/** Every member of a ZIP archive in central-directory order, its sizes checked for plausibility. */
export function zipEntries(bytes: Uint8Array): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (at: number) => view.getUint16(at, true);
  const u32 = (at: number) => view.getUint32(at, true);
  const u64 = (at: number) => {
    const v = view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DataError('not a valid zip/.npz file: a ZIP64 value too large');
    return Number(v);
  };
  const need = (at: number, length: number, what: string) => {
    if (at < 0 || at + length > bytes.byteLength)
      throw new DataError(`not a valid zip/.npz file: ${what} lies outside the file`);
  };

  // End of central directory: the last END signature (a comment of up to 64 KiB may follow it).
  let end = -1;
  for (let at = bytes.byteLength - 22; at >= Math.max(0, bytes.byteLength - 22 - 0xffff); at--) {
    if (u32(at) === END) {
      end = at;
      break;
    }
  }
  if (end < 0) throw new DataError('not a zip/.npz file (no end-of-central-directory record)');
  if (u16(end + 4) !== 0 || u16(end + 6) !== 0) throw new DataError('multi-disk zip archives are not supported');
  if (u16(end + 8) !== u16(end + 10))
    throw new DataError('not a valid zip/.npz file: the end record holds two different entry counts');
  let entries = u16(end + 10);
  let cdSize = u32(end + 12);
  let cdOffset = u32(end + 16);
  if (entries === 0xffff || cdSize === U32 || cdOffset === U32) {
    const locator = end - 20;
    if (locator < 0 || u32(locator) !== END64_LOCATOR)
      throw new DataError('not a valid zip/.npz file: ZIP64 end-of-central-directory locator missing');
    const end64 = u64(locator + 8);
    need(end64, 56, 'the ZIP64 end-of-central-directory record');
    if (u32(end64) !== END64)
      throw new DataError('not a valid zip/.npz file: bad ZIP64 end-of-central-directory record');
    entries = u64(end64 + 32);
    cdSize = u64(end64 + 40);
    cdOffset = u64(end64 + 48);
  }
  need(cdOffset, cdSize, 'the central directory');

  const decoder = new TextDecoder('utf-8');
  const out: ZipEntry[] = [];
  const names = new Set<string>();
  let at = cdOffset;
  for (let e = 0; e < entries; e++) {
    need(at, 46, 'a central directory entry');
    if (u32(at) !== CENTRAL) throw new DataError('not a valid zip/.npz file: bad central directory entry');
    const flags = u16(at + 8);
    const method = u16(at + 10);
    const crc = u32(at + 16);
    let compressedSize = u32(at + 20);
    let size = u32(at + 24);
    const nameLength = u16(at + 28);
    const extraLength = u16(at + 30);
    const commentLength = u16(at + 32);
    let localOffset = u32(at + 42);
    need(at + 46, nameLength + extraLength + commentLength, 'a central directory entry');
    const nameBytes = bytes.subarray(at + 46, at + 46 + nameLength);
    const name = decoder.decode(nameBytes);
    const member = `zip member '${printable(name)}'`;
    // ZIP64 extended information: 8-byte values for exactly the fields saturated above.
    let x = at + 46 + nameLength;
    const extraEnd = x + extraLength;
    while (x + 4 <= extraEnd) {
      const id = u16(x);
      const length = u16(x + 2);
      if (x + 4 + length > extraEnd) throw new DataError(`${member}: its extra field overruns its entry`);
      if (id === 0x0001) {
        let f = x + 4;
        const next = () => {
          if (f + 8 > x + 4 + length) throw new DataError(`${member}: its ZIP64 field is too short`);
          f += 8;
          return u64(f - 8);
        };
        if (size === U32) size = next();
        if (compressedSize === U32) compressedSize = next();
        if (localOffset === U32) localOffset = next();
      }
      x += 4 + length;
    }
    at = extraEnd + commentLength;

    if (names.has(name)) throw new DataError(`${member} occurs twice`);
    names.add(name);
    if (flags & 0x1) throw new DataError(`${member} is encrypted`);
    if (method !== 0 && method !== 8)
      throw new DataError(
        `${member} uses compression method ${method} (only stored (0) and deflated (8) are supported)`,
      );
    need(localOffset, 30, `the local header of '${printable(name)}'`);
    if (u32(localOffset) !== LOCAL)
      throw new DataError(`not a valid zip/.npz file: bad local header for '${printable(name)}'`);
    const localName = localOffset + 30;
    const dataStart = localName + u16(localOffset + 26) + u16(localOffset + 28);
    need(localName, nameLength, `the local header of '${printable(name)}'`);
    // The name is stored twice; a difference means one copy is damaged.
    if (u16(localOffset + 26) !== nameLength || nameBytes.some((b, i) => bytes[localName + i] !== b))
      throw new DataError(`${member}: its local header holds another name`);
    need(dataStart, compressedSize, `the data of '${printable(name)}'`);
    if (size > MAX_SIZE) throw new DataError(`${member} declares ${size} bytes, more than the 2 GiB read at most`);
    if (method === 0 && size !== compressedSize)
      throw new DataError(`${member} is stored uncompressed in ${compressedSize} bytes but declares ${size}`);
    if (method === 8 && size > MAX_RATIO * compressedSize)
      throw new DataError(`${member} declares ${size} bytes, more than its ${compressedSize} deflated bytes can hold`);
    out.push({ name, method: method as 0 | 8, size, crc, raw: bytes.subarray(dataStart, dataStart + compressedSize) });
  }
  if (at !== cdOffset + cdSize)
    throw new DataError(`not a valid zip/.npz file: ${entries} entries do not fill the central directory`);
  return out;
}

/** Inflates at most `entry.size` bytes (a stream that would give more is refused, unread). */
function inflate(entry: ZipEntry, input: Uint8Array, finishFlush: number): Uint8Array {
  try {
    return new Uint8Array(zlib.inflateRawSync(input, { finishFlush, maxOutputLength: Math.max(1, entry.size) }));
  } catch (error) {
    const why =
      (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE'
        ? `inflates to more than the ${entry.size} bytes it declares`
        : `has corrupt deflated data (${(error as Error).message})`;
    throw new DataError(`zip member '${printable(entry.name)}' ${why}`, { cause: error });
  }
}

/**
 * The first `n` bytes of an entry's data (fewer if it is shorter), inflating little more than
 * that: to look at a header before trusting the declared size. Not CRC-checked.
 */
export function zipEntryHead(entry: ZipEntry, n: number): Uint8Array {
  if (entry.method === 0) return entry.raw.subarray(0, n);
  // Deflate spends at most 15 bits on a byte, plus a few hundred bytes per block header.
  const input = entry.raw.subarray(0, 2 * n + 1024);
  return inflate(entry, input, zlib.constants.Z_SYNC_FLUSH).subarray(0, n);
}

/** An entry's data, decompressed, checked against the declared size and the CRC-32. */
export function zipEntryData(entry: ZipEntry): Uint8Array {
  const member = `zip member '${printable(entry.name)}'`;
  const data = entry.method === 0 ? entry.raw : inflate(entry, entry.raw, zlib.constants.Z_FINISH);
  if (data.byteLength !== entry.size)
    throw new DataError(`${member} has ${data.byteLength} bytes, its header says ${entry.size}`);
  if (crc32(data) !== entry.crc) throw new DataError(`${member} fails its CRC-32 check (the file is corrupt)`);
  return data;
}

/** Every member of a ZIP archive, decompressed and CRC-checked, in central-directory order. */
export function readZip(bytes: Uint8Array): ZipMember[] {
  return zipEntries(bytes).map((entry) => ({ name: entry.name, data: zipEntryData(entry) }));
}

/**
 * A ZIP archive of STORED members (no compression, as `np.savez` writes them, but without ZIP64),
 * or DEFLATED ones with `deflate: true` (as `np.savez_compressed`).
 */
export function writeZip(members: readonly ZipMember[], options: { deflate?: boolean } = {}): Uint8Array {
  const encoder = new TextEncoder();
  const method = options.deflate ? 8 : 0;
  const stored = members.map((m) => (options.deflate ? new Uint8Array(zlib.deflateRawSync(m.data)) : m.data));
  const DOS_DATE = (0 << 9) | (1 << 5) | 1; // 1980-01-01
  const DOS_TIME = 0;
  const names = members.map((m) => encoder.encode(m.name));
  const crcs = members.map((m) => crc32(m.data));
  let localSize = 0;
  for (let i = 0; i < members.length; i++) localSize += 30 + names[i].byteLength + stored[i].byteLength;
  let centralSize = 0;
  for (const n of names) centralSize += 46 + n.byteLength;
  const total = localSize + centralSize + 22;
  if (total >= U32 || members.length >= 0xffff || members.some((m) => m.data.byteLength >= U32)) {
    throw new Error('the archive would need ZIP64 (over 4 GiB or 65535 members), which is not written');
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  const offsets: number[] = [];
  let at = 0;
  members.forEach((m, i) => {
    const utf8 = /[^\x20-\x7e]/.test(m.name) ? 0x0800 : 0;
    offsets.push(at);
    view.setUint32(at, LOCAL, true);
    view.setUint16(at + 4, 20, true); // version needed: 2.0
    view.setUint16(at + 6, utf8, true);
    view.setUint16(at + 8, method, true);
    view.setUint16(at + 10, DOS_TIME, true);
    view.setUint16(at + 12, DOS_DATE, true);
    view.setUint32(at + 14, crcs[i], true);
    view.setUint32(at + 18, stored[i].byteLength, true);
    view.setUint32(at + 22, m.data.byteLength, true);
    view.setUint16(at + 26, names[i].byteLength, true);
    view.setUint16(at + 28, 0, true);
    out.set(names[i], at + 30);
    out.set(stored[i], at + 30 + names[i].byteLength);
    at += 30 + names[i].byteLength + stored[i].byteLength;
  });
  const cdOffset = at;
  members.forEach((m, i) => {
    const utf8 = /[^\x20-\x7e]/.test(m.name) ? 0x0800 : 0;
    view.setUint32(at, CENTRAL, true);
    view.setUint16(at + 4, 20, true); // made by: MS-DOS, 2.0
    view.setUint16(at + 6, 20, true);
    view.setUint16(at + 8, utf8, true);
    view.setUint16(at + 10, method, true);
    view.setUint16(at + 12, DOS_TIME, true);
    view.setUint16(at + 14, DOS_DATE, true);
    view.setUint32(at + 16, crcs[i], true);
    view.setUint32(at + 20, stored[i].byteLength, true);
    view.setUint32(at + 24, m.data.byteLength, true);
    view.setUint16(at + 28, names[i].byteLength, true);
    // extra, comment, disk, internal attributes: 0
    view.setUint32(at + 38, 0, true); // external attributes
    view.setUint32(at + 42, offsets[i], true);
    out.set(names[i], at + 46);
    at += 46 + names[i].byteLength;
  });
  view.setUint32(at, END, true);
  view.setUint16(at + 8, members.length, true);
  view.setUint16(at + 10, members.length, true);
  view.setUint32(at + 12, at - cdOffset, true);
  view.setUint32(at + 16, cdOffset, true);
  return out;
}
