import { crc32Portable } from '@matryoshka-ts/core';

/**
 * The metadata key under which this writer stores CRC-32s: of the header (every field but this
 * one) and of each tensor's bytes. Files without it (imports, other writers) load unchecked.
 */
export const CHECKSUM_KEY = 'mdm.crc32';

export interface Checksums {
  /** CRC-32 of the header's JSON with this key removed (see `headerForChecksum`). */
  header: string;
  /** CRC-32 of each tensor's bytes, by tensor name. */
  tensors: Record<string, string>;
}

/**
 * Node's zlib.crc32 runs at memory speed. It is looked up at run time through
 * `process.getBuiltinModule` (Node ≥ 20.16), not imported, so that this module loads in a web page
 * too; there, and on Node releases without it, the portable table-driven CRC-32 runs (the same values).
 */
type Zlib = { crc32?: (data: Uint8Array, value?: number) => number };
const nodeProcess = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
const nativeCrc32 = (nodeProcess?.getBuiltinModule?.('zlib') as Zlib | undefined)?.crc32;

/** CRC-32 (zip's polynomial) of `data`, continuing from `value` for data that comes in pieces. */
export function crc32(data: Uint8Array, value = 0): number {
  return nativeCrc32 ? nativeCrc32(data, value) >>> 0 : crc32Portable(data, value);
}

/** Eight lowercase hex digits: fixed width, so a header's length is known before its checksums are. */
export function crcHex(value: number): string {
  return value.toString(16).padStart(8, '0');
}

/**
 * The text a header checksum covers: the header's JSON without the checksum entry (and without
 * `__metadata__` when that entry was its only field), as `JSON.stringify` writes it. Writer and
 * reader build it the same way, so whitespace and padding never matter, and any changed value does.
 */
export function headerForChecksum(header: Record<string, unknown>): string {
  const metadata = header.__metadata__ as Record<string, string> | undefined;
  if (!metadata || !(CHECKSUM_KEY in metadata)) return JSON.stringify(header);
  const { [CHECKSUM_KEY]: _, ...rest } = metadata;
  const copy: Record<string, unknown> = Object.create(null);
  for (const [key, value] of Object.entries(header)) {
    if (key !== '__metadata__') copy[key] = value;
    else if (Object.keys(rest).length > 0) copy[key] = rest;
  }
  return JSON.stringify(copy);
}

const VALUE_START = '{"header":"';

/** Characters that differ between two strings of the same length (Infinity for different lengths). */
function hamming(a: string, b: string): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

/**
 * True for a metadata entry that is a damaged checksum entry: its key or the start of its value
 * within two changed characters of ours. A file that lost its checksums to damage must not pass
 * for an unchecked import: to do so, damage would have to change at least three characters of
 * the key and three of the value's first eleven.
 */
export function looksLikeChecksums(key: string, value: string): boolean {
  return hamming(key, CHECKSUM_KEY) <= 2 || hamming(value.slice(0, VALUE_START.length), VALUE_START) <= 2;
}

/** Parses a stored checksum entry; undefined if it is not one this writer made. */
export function parseChecksums(text: string): Checksums | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const v = value as Partial<Checksums> | null;
  const hex = (s: unknown) => typeof s === 'string' && /^[0-9a-f]{8}$/.test(s);
  if (!v || typeof v !== 'object' || !hex(v.header) || !v.tensors || typeof v.tensors !== 'object') return undefined;
  if (!Object.values(v.tensors).every(hex)) return undefined;
  return v as Checksums;
}
