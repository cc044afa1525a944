import { type FileHandle, open } from 'node:fs/promises';
import { readAt } from './tar.js';

/** One record of a CSV/TSV file: its raw field bytes (quotes removed) and where it lies. */
export interface DelimitedRow {
  /** Byte offset of the record's first byte; reading again from here yields this record first. */
  offset: number;
  /** Byte offset just past the record (and its line break): where the next one starts. */
  end: number;
  /** The fields' bytes; empty for a malformed record. */
  fields: Uint8Array[];
  /** An unterminated quote, a quote followed by text, or a record over `MAX_RECORD` bytes. */
  malformed?: boolean;
}

/** No caption row is this long; past it a record is taken to be an unterminated quote. */
export const MAX_RECORD = 1 << 18;
/** Read size; well above MAX_RECORD so the buffer is refilled once per ~CHUNK bytes, not per record. */
const CHUNK = 1 << 21;
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

/**
 * Streams the records of a delimited text file from byte offset `start` (0, or an `offset` this
 * reader gave), RFC 4180 style as pandas and Python's csv write it: a field that starts with `"` is
 * quoted and may hold delimiters, newlines and `""` for a quote; LF or CRLF ends a record; blank lines
 * are skipped. Works on bytes, so a caption's encoding is checked by the caller, and holds about one
 * chunk, so a multi-gigabyte CSV can be passed over. A malformed record is yielded flagged, and reading
 * resumes after the first line break past its start. Where records start depends only on the file,
 * never on how it was chunked, so offsets from one pass are valid in another. A read error throws.
 */
export async function* readDelimited(path: string, delimiter: ',' | '\t', start = 0): AsyncGenerator<DelimitedRow> {
  for await (const batch of batches(path, delimiter, start, true)) yield* batch;
}

/**
 * Where each record starts (and the next would), a buffer's worth at a time, without extracting
 * fields: the cheap pass over a whole CSV that `webvidSource` makes at start (WebVid-10M's is GBs).
 */
export async function* recordOffsets(path: string, delimiter: ',' | '\t', start = 0): AsyncGenerator<DelimitedRow[]> {
  yield* batches(path, delimiter, start, false);
}

/**
 * The first record's fields as trimmed text, for header checks, and where the data starts; reads
 * only the head of the file. Undefined for an empty file; no names for a malformed header.
 */
export async function readHeader(
  path: string,
  delimiter: ',' | '\t',
): Promise<{ names: string[]; end: number } | undefined> {
  const file = await open(path, 'r');
  try {
    const want = 3 + MAX_RECORD + 2; // a byte-order mark, then a whole record and its CRLF
    let head = await readAt(file, 0, want);
    const eof = head.length < want;
    const bom = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
    head = head.subarray(bom);
    if (head.length === 0) return undefined;
    const ends = scanRecord(head, 0, delimiter.charCodeAt(0), eof);
    if (!ends) return { names: [], end: bom };
    const names = extractFields(head, 0, ends).map((f) => new TextDecoder().decode(f).trim());
    return { names, end: bom + ends[ends.length - 1] };
  } finally {
    await file.close();
  }
}

/** Records a buffer at a time (one await per ~2 MiB, not per record); `fields` only when `collect`. */
async function* batches(
  path: string,
  delimiter: ',' | '\t',
  start: number,
  collect: boolean,
): AsyncGenerator<DelimitedRow[]> {
  const file = await open(path, 'r');
  try {
    yield* parseFile(file, delimiter.charCodeAt(0), start, collect);
  } finally {
    await file.close();
  }
}

async function* parseFile(
  file: FileHandle,
  delimiter: number,
  start: number,
  collect: boolean,
): AsyncGenerator<DelimitedRow[]> {
  let buffer: Uint8Array = new Uint8Array(0);
  let base = start; // file offset of buffer[0]
  let eof = false;
  let pos = 0;
  if (start === 0) {
    // A UTF-8 byte-order mark (Excel writes one) is not part of the first header name.
    const head = await readAt(file, 0, 3);
    if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) base = 3;
  }
  // Parse only while a whole MAX_RECORD (+ CRLF) is buffered, so chunking never decides an outcome.
  const ready = () => pos < buffer.length && (eof || buffer.length - pos >= MAX_RECORD + 2);
  for (;;) {
    if (!eof) {
      const more = await readAt(file, base + buffer.length, CHUNK);
      eof = more.length < CHUNK;
      buffer = concat([buffer.subarray(pos), more]);
      base += pos;
      pos = 0;
    }
    const rows: DelimitedRow[] = [];
    let malformed = false;
    while (ready()) {
      const ends = scanRecord(buffer, pos, delimiter, eof);
      if (!ends) {
        malformed = true;
        break;
      }
      const next = ends[ends.length - 1];
      const blank = ends.length === 2 && ends[0] === pos;
      if (!blank)
        rows.push({ offset: base + pos, end: base + next, fields: collect ? extractFields(buffer, pos, ends) : [] });
      pos = next;
    }
    if (rows.length > 0) yield rows;
    if (malformed) {
      // Resume after the first line break past the record's start, however far it is.
      const offset = base + pos;
      let lf = buffer.indexOf(LF, pos);
      while (lf < 0 && !eof) {
        base += buffer.length;
        buffer = await readAt(file, base, CHUNK);
        eof = buffer.length < CHUNK;
        lf = buffer.indexOf(LF);
      }
      pos = lf < 0 ? buffer.length : lf + 1;
      yield [{ offset, end: base + pos, fields: [], malformed: true }];
    }
    if (eof && pos >= buffer.length) return;
  }
}

/**
 * Finds the record at `pos` without copying anything: the end of each field (just past its closing
 * quote, if quoted), then where the next record starts; undefined when the record is malformed —
 * a quote not closed within MAX_RECORD bytes, a closing quote followed by text, or a lone CR.
 */
function scanRecord(buffer: Uint8Array, pos: number, delimiter: number, eof: boolean): number[] | undefined {
  const limit = Math.min(buffer.length, pos + MAX_RECORD);
  const ends: number[] = [];
  let i = pos;
  for (;;) {
    i = buffer[i] === QUOTE ? quotedEnd(buffer, i, limit) : plainEnd(buffer, i, limit, delimiter);
    if (i < 0) return undefined;
    ends.push(i);
    if (i < limit && buffer[i] === delimiter) {
      i++;
      continue;
    }
    if (i >= buffer.length && eof) return [...ends, i];
    if (buffer[i] === CR && buffer[i + 1] === LF) i++;
    if (buffer[i] === LF || (buffer[i] === CR && i + 1 === buffer.length && eof)) return [...ends, i + 1];
    return undefined;
  }
}

/** End of an unquoted field (at the delimiter or line end); -1 when MAX_RECORD runs out first. */
function plainEnd(buffer: Uint8Array, start: number, limit: number, delimiter: number): number {
  let i = start;
  while (i < limit) {
    const b = buffer[i];
    if (b === delimiter || b === LF || b === CR) return i;
    i++;
  }
  return limit === buffer.length ? i : -1;
}

/**
 * End of a quoted field, just past its closing quote (`""` inside is an escaped quote); -1 when not closed
 * within `limit`.
 */
function quotedEnd(buffer: Uint8Array, start: number, limit: number): number {
  for (let i = buffer.indexOf(QUOTE, start + 1); i >= 0 && i < limit; i = buffer.indexOf(QUOTE, i + 2)) {
    if (buffer[i + 1] !== QUOTE || i + 1 >= limit) return i + 1;
  }
  return -1;
}

/** The fields' bytes from the ends `scanRecord` found: quotes removed, `""` made `"`. */
function extractFields(buffer: Uint8Array, pos: number, ends: number[]): Uint8Array[] {
  const fields: Uint8Array[] = [];
  let start = pos;
  for (let k = 0; k < ends.length - 1; k++) {
    const end = ends[k];
    fields.push(buffer[start] === QUOTE ? unquote(buffer.subarray(start + 1, end - 1)) : buffer.subarray(start, end));
    start = end + 1; // past the delimiter
  }
  return fields;
}

function unquote(inner: Uint8Array): Uint8Array {
  if (inner.indexOf(QUOTE) < 0) return inner;
  const parts: Uint8Array[] = [];
  let from = 0;
  for (let i = inner.indexOf(QUOTE); i >= 0; i = inner.indexOf(QUOTE, i + 2)) {
    parts.push(inner.subarray(from, i + 1)); // keeps one quote of the pair
    from = i + 2;
  }
  parts.push(inner.subarray(from));
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
