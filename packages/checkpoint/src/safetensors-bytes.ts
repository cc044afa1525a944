// The safetensors format in memory: header parsing and validation, decoding a whole file held in
// a Uint8Array (an ArrayBuffer fetched by a web page), encoding one. No Node module: the file
// I/O (random access, atomic writes) is safetensors.ts; this is what `@matryoshka-ts/checkpoint/bytes`
// gives a browser.
import {
  CHECKSUM_KEY,
  type Checksums,
  crc32,
  crcHex,
  headerForChecksum,
  looksLikeChecksums,
  parseChecksums,
} from './checksums.js';
import {
  DTYPE_BYTES,
  type Dtype,
  SafetensorsError,
  type TensorData,
  type TensorEntry,
  decodeElements,
  encodeElements,
  isDtype,
} from './dtypes.js';

/** Where one tensor sits in a file. Offsets are absolute file positions. */
export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** First byte of the tensor in the file. */
  begin: number;
  /** One past its last byte. */
  end: number;
  /** CRC-32 of its bytes (8 hex digits), where the writer stored one. */
  crc32?: string;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** File position where the data section starts (8 + header length). */
  dataStart: number;
  /** True when the file carries checksums (this writer's files): the header's was verified, tensors' are on read. */
  checksummed: boolean;
}

/** The safetensors format caps the JSON header at 100 MB; larger is treated as corrupt. */
const MAX_HEADER_BYTES = 100_000_000;

function fail(message: string, path?: string): never {
  throw new SafetensorsError(message, path);
}

/** Length of the JSON header from the first 8 bytes (u64 little-endian), checked against the file size. */
export function headerLength(first8: Uint8Array, fileSize: number, path?: string): number {
  if (fileSize < 8 || first8.byteLength < 8)
    fail(`file is ${fileSize} bytes, too short for a safetensors header`, path);
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) fail(`header length ${n} runs past the end of the ${fileSize}-byte file`, path);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the 100 MB limit`, path);
  return Number(n);
}

/** Validates the JSON header against the file size: dtypes, shapes, offsets in range, no overlaps. */
export function parseHeader(json: Uint8Array, fileSize: number, path?: string): SafetensorsHeader {
  const dataStart = 8 + json.byteLength;
  const dataSize = fileSize - dataStart;
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (error) {
    fail(`header is not valid UTF-8 JSON (${(error as Error).message})`, path);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('header is not a JSON object', path);
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value))
        fail('__metadata__ is not an object', path);
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`, path);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (entry === null || typeof entry !== 'object') fail(`tensor '${name}': entry is not an object`, path);
    if (!isDtype(entry.dtype)) fail(`tensor '${name}': unsupported dtype ${JSON.stringify(entry.dtype)}`, path);
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor '${name}': shape must be a list of non-negative integers`, path);
    }
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor '${name}': data_offsets must be two non-negative integers`, path);
    }
    const [b, e] = offsets as number[];
    if (b > e) fail(`tensor '${name}': data_offsets [${b}, ${e}] are reversed`, path);
    if (e > dataSize)
      fail(`tensor '${name}': data_offsets [${b}, ${e}] are out of range (data section is ${dataSize} bytes)`, path);
    const count = (shape as number[]).reduce((a, d) => a * d, 1);
    const expected = count * DTYPE_BYTES[entry.dtype];
    if (e - b !== expected) {
      fail(`tensor '${name}': ${e - b} bytes for shape [${shape}] of ${entry.dtype} (expected ${expected})`, path);
    }
    tensors.set(name, { dtype: entry.dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
  }
  // A checksum entry whose key was damaged still looks like one: never read such a file unchecked.
  const damagedKey = Object.keys(metadata).find((k) => k !== CHECKSUM_KEY && looksLikeChecksums(k, metadata[k]));
  if (damagedKey !== undefined)
    fail(`__metadata__ key ${JSON.stringify(damagedKey)} is a damaged checksum entry`, path);
  const checksummed = CHECKSUM_KEY in metadata;
  if (checksummed) {
    const sums = parseChecksums(metadata[CHECKSUM_KEY]);
    if (!sums) fail(`__metadata__.${CHECKSUM_KEY} is damaged`, path);
    const actual = crcHex(crc32(new TextEncoder().encode(headerForChecksum(raw as Record<string, unknown>))));
    if (actual !== sums.header)
      fail(
        `header checksum mismatch (stored ${sums.header}, header has ${actual}): the header changed after writing`,
        path,
      );
    for (const [name, info] of tensors) {
      info.crc32 = sums.tensors[name];
      if (info.crc32 === undefined) fail(`tensor '${name}' has no checksum though the file carries them`, path);
    }
    // Callers see their own metadata, as they wrote it.
    const { [CHECKSUM_KEY]: _, ...rest } = metadata;
    metadata = rest;
  }
  const sorted = [...tensors.entries()].sort((x, y) => x[1].begin - y[1].begin || x[1].end - y[1].end);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1];
    const [name, cur] = sorted[i];
    if (cur.begin < prev.end) fail(`tensors '${prevName}' and '${name}' overlap`, path);
  }
  return { tensors, metadata, dataStart, checksummed };
}

/** Refuses a tensor whose bytes do not match the checksum stored for it (a corrupt file). */
export function verifyTensor(name: string, info: TensorInfo, bytes: Uint8Array, path?: string): void {
  if (info.crc32 === undefined) return;
  const actual = crcHex(crc32(bytes));
  if (actual !== info.crc32)
    fail(`tensor '${name}': checksum mismatch (stored ${info.crc32}, data has ${actual}): the file is corrupt`, path);
}

/**
 * Decodes a whole safetensors file held in memory (the bytes of a file, or an ArrayBuffer a web
 * page fetched), verifying the checksums this writer stores; `path` names it in errors.
 */
export function decodeSafetensors(
  input: Uint8Array | ArrayBufferLike,
  path?: string,
): { tensors: Map<string, TensorEntry>; metadata: Record<string, string> } {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const n = headerLength(bytes.subarray(0, 8), bytes.byteLength, path);
  const header = parseHeader(bytes.subarray(8, 8 + n), bytes.byteLength, path);
  const tensors = new Map<string, TensorEntry>();
  for (const [name, info] of header.tensors) {
    const count = info.shape.reduce((a, d) => a * d, 1);
    const data = bytes.subarray(info.begin, info.end);
    verifyTensor(name, info, data, path);
    tensors.set(name, { dtype: info.dtype, shape: info.shape, data: decodeElements(info.dtype, data, count) });
  }
  return { tensors, metadata: header.metadata };
}

/** A tensor to write: values in row-major order, converted to `dtype` on the way out. */
export interface TensorToWrite {
  dtype: Dtype;
  shape: number[];
  data: TensorData | ArrayLike<number>;
}

export function planWrite(
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
) {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new SafetensorsError("'__metadata__' is reserved and cannot name a tensor");
    if (!isDtype(t.dtype)) throw new SafetensorsError(`tensor '${name}': unsupported dtype ${JSON.stringify(t.dtype)}`);
    // The same rule the reader applies, so the writer never produces a file it would reject.
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`tensor '${name}': shape [${t.shape}] must be a list of non-negative integers`);
    }
    const count = t.shape.reduce((a, d) => a * d, 1);
    if (t.data.length !== count)
      throw new SafetensorsError(`tensor '${name}': ${t.data.length} values for shape [${t.shape}]`);
  }
  // Wider elements first, so every tensor starts at a multiple of its element size.
  entries.sort((a, b) => DTYPE_BYTES[b[1].dtype] - DTYPE_BYTES[a[1].dtype] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  // No prototype: on a plain object, `header['__proto__'] = …` would set the prototype and drop the tensor.
  const header: Record<string, unknown> = Object.create(null);
  // A checksum entry copied from another file's metadata is stale: this write makes its own.
  const { [CHECKSUM_KEY]: _, ...userMetadata } = metadata ?? {};
  if (Object.keys(userMetadata).length > 0) header.__metadata__ = userMetadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const bytes = t.data.length * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const headerCrc = crcHex(crc32(new TextEncoder().encode(JSON.stringify(header))));
  // The file's first bytes: length, then the header with these tensor checksums (fixed width:
  // any checksums give the same length, so placeholders can be overwritten in place).
  const prefix = (tensorCrcs: Record<string, string>): Uint8Array => {
    const sums: Checksums = { header: headerCrc, tensors: tensorCrcs };
    const full: Record<string, unknown> = Object.create(null);
    full.__metadata__ = { ...userMetadata, [CHECKSUM_KEY]: JSON.stringify(sums) };
    for (const [name] of entries) full[name] = header[name];
    const unpadded = new TextEncoder().encode(JSON.stringify(full));
    const padding = (8 - ((8 + unpadded.byteLength) % 8)) % 8;
    const jsonBytes = new Uint8Array(unpadded.byteLength + padding).fill(0x20); // spaces
    jsonBytes.set(unpadded);
    const out = new Uint8Array(8 + jsonBytes.byteLength);
    new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
    out.set(jsonBytes, 8);
    return out;
  };
  return { entries, prefix, dataBytes: offset };
}

/** Encodes tensors into one in-memory safetensors file (for small files; see `writeSafetensors`). */
export function encodeSafetensors(
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  const { entries, prefix, dataBytes } = planWrite(tensors, metadata);
  const data = entries.map(([, t]) => encodeElements(t.dtype, t.data as ArrayLike<number | bigint>));
  const first = prefix(Object.fromEntries(entries.map(([name], i) => [name, crcHex(crc32(data[i]))])));
  const out = new Uint8Array(first.byteLength + dataBytes);
  out.set(first, 0);
  let at = first.byteLength;
  for (const bytes of data) {
    out.set(bytes, at);
    at += bytes.byteLength;
  }
  return out;
}
