/**
 * numpy's .npy format (versions 1.0, 2.0 and 3.0): the magic string "\x93NUMPY", a version, the
 * header length, then a Python dict literal — {'descr': '<f8', 'fortran_order': False,
 * 'shape': (3, 4), } — padded with spaces and a newline so the data starts on a 64-byte boundary,
 * then the elements in C order. Only little-endian float64 ('<f8') and float32 ('<f4') in C order
 * are read and written; anything else is refused with a message that says what the file holds.
 */

import { endianness } from 'node:os';
import { DataError } from '@matryoshka-ts/core';
import { printable } from './printable.js';

export type NpyDtype = 'float64' | 'float32';

/** An n-dimensional array as read from (or written to) a .npy file: C order (row-major). */
export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: Float64Array | Float32Array;
}

/** What `encodeNpy` accepts: the dtype follows the data (number[] → float64) unless given; shape defaults to 1-D. */
export interface NpyInput {
  dtype?: NpyDtype;
  shape?: readonly number[];
  data: Float64Array | Float32Array | readonly number[];
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const DESCR: Record<NpyDtype, string> = { float64: '<f8', float32: '<f4' };
const ITEMSIZE: Record<NpyDtype, number> = { float64: 8, float32: 4 };
const LITTLE_ENDIAN_HOST = endianness() === 'LE';

// ---------------------------------------------------------------------------------------------
// The header: a tiny parser for the Python literals numpy writes (dict, tuple, list, str, int,
// True/False/None).

type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

/** Nesting deeper than this is refused: numpy's headers nest twice ({'shape': (…)}), and a
 * damaged header of 10⁴ brackets must not exhaust the stack of this recursive parser. */
const MAX_DEPTH = 16;

function parsePythonLiteral(text: string): PyValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new DataError(`invalid .npy header (${what} at offset ${i}): "${printable(text.trim())}"`);
  };
  const skip = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const token = /[A-Za-z_][A-Za-z_0-9]*|-?\d+L?/y;
  const value = (depth: number): PyValue => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    skip();
    const ch = text[i];
    if (ch === '{') {
      i++;
      // No prototype: a key such as '__proto__' is just a key.
      const out: { [key: string]: PyValue } = Object.create(null);
      for (;;) {
        skip();
        if (text[i] === '}') {
          i++;
          return out;
        }
        const key = value(depth + 1);
        if (typeof key !== 'string') fail('a dict key that is not a string');
        skip();
        if (text[i] !== ':') fail("a missing ':'");
        i++;
        out[key as string] = value(depth + 1);
        skip();
        if (text[i] === ',') i++;
        else if (text[i] !== '}') fail("a missing ',' or '}'");
      }
    }
    if (ch === '(' || ch === '[') {
      const close = ch === '(' ? ')' : ']';
      i++;
      const out: PyValue[] = [];
      for (;;) {
        skip();
        if (text[i] === close) {
          i++;
          return out;
        }
        out.push(value(depth + 1));
        skip();
        if (text[i] === ',') i++;
        else if (text[i] !== close) fail(`a missing ',' or '${close}'`);
      }
    }
    if (ch === "'" || ch === '"') {
      const end = text.indexOf(ch, i + 1);
      if (end < 0) fail('an unterminated string');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    token.lastIndex = i;
    const word = token.exec(text);
    if (!word) return fail('an unexpected character');
    i += word[0].length;
    if (word[0] === 'True') return true;
    if (word[0] === 'False') return false;
    if (word[0] === 'None') return null;
    if (/^-?\d/.test(word[0])) return Number.parseInt(word[0], 10);
    return fail(`an unexpected name '${printable(word[0])}'`);
  };
  const out = value(0);
  skip();
  if (i !== text.length) fail('trailing characters');
  return out;
}

function dtypeOfDescr(descr: PyValue): NpyDtype {
  if (descr === '<f8') return 'float64';
  if (descr === '<f4') return 'float32';
  if (typeof descr !== 'string')
    throw new DataError(
      `unsupported .npy dtype ${printable(JSON.stringify(descr))}: structured arrays are not supported ` +
        `(only '<f8' and '<f4')`,
    );
  if (descr === '>f8' || descr === '>f4')
    throw new DataError(
      `unsupported .npy dtype '${descr}': big-endian floats are not supported (only '<f8' and '<f4'); ` +
        `convert with arr.astype('<f8')`,
    );
  throw new DataError(
    `unsupported .npy dtype '${printable(descr)}': only float64 ('<f8') and float32 ('<f4') arrays are supported`,
  );
}

/** What a .npy header says: the array's dtype and shape, where its data starts and how long it is. */
export interface NpyHeader {
  dtype: NpyDtype;
  shape: number[];
  dataStart: number;
  byteLength: number;
}

/**
 * Where the data of a .npy file starts, from its first 12 bytes (the magic string, the version
 * and the header length), so that a reader can fetch just the header before the rest.
 */
export function npyDataStart(bytes: Uint8Array): number {
  if (bytes.byteLength < 10 || MAGIC.some((b, i) => bytes[i] !== b))
    throw new DataError('not a .npy file (the magic string \\x93NUMPY is missing)');
  const [major, minor] = [bytes[6], bytes[7]];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (major === 1) return 10 + view.getUint16(8, true);
  if (major !== 2 && major !== 3)
    throw new DataError(`unsupported .npy format version ${major}.${minor} (1.0, 2.0 and 3.0 are read)`);
  if (bytes.byteLength < 12) throw new DataError('truncated .npy header');
  return 12 + view.getUint32(8, true);
}

/** The header of a .npy file; `bytes` may stop where the data starts. */
export function parseNpyHeader(bytes: Uint8Array): NpyHeader {
  const dataStart = npyDataStart(bytes);
  if (dataStart > bytes.byteLength) throw new DataError('truncated .npy header');
  const headerStart = bytes[6] === 1 ? 10 : 12;
  const headerText = new TextDecoder(bytes[6] === 3 ? 'utf-8' : 'latin1').decode(
    bytes.subarray(headerStart, dataStart),
  );
  const excerpt = `"${printable(headerText.trim())}"`;
  const header = parsePythonLiteral(headerText);
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw new DataError(`invalid .npy header: not a dict: ${excerpt}`);
  for (const key of ['descr', 'fortran_order', 'shape'])
    if (!(key in header)) throw new DataError(`invalid .npy header: no '${key}': ${excerpt}`);
  const dtype = dtypeOfDescr(header.descr);
  if (header.fortran_order !== false)
    throw new DataError(
      'unsupported .npy array: fortran_order is True (only C-order arrays are read); save np.ascontiguousarray(arr)',
    );
  const shape = header.shape;
  if (!Array.isArray(shape) || !shape.every((s) => typeof s === 'number' && Number.isSafeInteger(s) && s >= 0)) {
    throw new DataError(
      `invalid .npy header: shape ${printable(JSON.stringify(shape))} is not a tuple of non-negative integers`,
    );
  }
  // May come out unsafe or Infinity for an absurd shape; it then matches no real byte count.
  const byteLength = (shape as number[]).reduce((a, b) => a * b, ITEMSIZE[dtype]);
  return { dtype, shape: shape as number[], dataStart, byteLength };
}

/** Decodes a .npy file's bytes. The data is copied (the result owns its buffer). */
export function decodeNpy(bytes: Uint8Array): NpyArray {
  const { dtype, shape, dataStart, byteLength } = parseNpyHeader(bytes);
  const available = bytes.byteLength - dataStart;
  if (available !== byteLength) {
    throw new DataError(
      `.npy data size mismatch: shape (${printable(shape.join(', '))}) of ${dtype} needs ${byteLength} bytes, ` +
        `the file has ${available}`,
    );
  }
  const size = byteLength / ITEMSIZE[dtype];
  const body = bytes.subarray(dataStart, dataStart + byteLength);
  let data: Float64Array | Float32Array;
  if (LITTLE_ENDIAN_HOST) {
    const copy = body.slice(); // aligned, owned
    data = dtype === 'float64' ? new Float64Array(copy.buffer, 0, size) : new Float32Array(copy.buffer, 0, size);
  } else {
    const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    data =
      dtype === 'float64'
        ? Float64Array.from({ length: size }, (_, i) => dv.getFloat64(8 * i, true))
        : Float32Array.from({ length: size }, (_, i) => dv.getFloat32(4 * i, true));
  }
  return { dtype, shape, data };
}

/** The header dict numpy writes, padded so that the data starts on a 64-byte boundary. */
function headerBytes(dtype: NpyDtype, shape: readonly number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  for (const [major, prefix] of [
    [1, 10],
    [2, 12],
  ] as const) {
    const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
    const headerLength = total - prefix;
    if (major === 1 && headerLength > 0xffff) continue;
    const out = new Uint8Array(total);
    out.set(MAGIC, 0);
    out[6] = major;
    out[7] = 0;
    const view = new DataView(out.buffer);
    if (major === 1) view.setUint16(8, headerLength, true);
    else view.setUint32(8, headerLength, true);
    out.fill(0x20, prefix);
    for (let i = 0; i < dict.length; i++) out[prefix + i] = dict.charCodeAt(i);
    out[total - 1] = 0x0a;
    return out;
  }
  throw new Error('unreachable');
}

/** Encodes an array as a .npy file (version 1.0, or 2.0 for headers over 64 KiB). */
export function encodeNpy(array: NpyInput): Uint8Array {
  const dtype: NpyDtype = array.dtype ?? (array.data instanceof Float32Array ? 'float32' : 'float64');
  if (!(dtype in DESCR))
    throw new Error(`unsupported dtype '${String(dtype)}': only 'float64' and 'float32' are written`);
  const shape = array.shape ? [...array.shape] : [array.data.length];
  if (!shape.every((s) => Number.isInteger(s) && s >= 0)) throw new RangeError(`invalid shape [${shape.join(', ')}]`);
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== array.data.length)
    throw new RangeError(`shape [${shape.join(', ')}] holds ${size} values, the data has ${array.data.length}`);
  const header = headerBytes(dtype, shape);
  const out = new Uint8Array(header.byteLength + size * ITEMSIZE[dtype]);
  out.set(header, 0);
  const typed = dtype === 'float64' ? Float64Array.from(array.data) : Float32Array.from(array.data);
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength), header.byteLength);
  } else {
    const dv = new DataView(out.buffer, header.byteLength);
    for (let i = 0; i < size; i++) {
      if (dtype === 'float64') dv.setFloat64(8 * i, typed[i], true);
      else dv.setFloat32(4 * i, typed[i], true);
    }
  }
  return out;
}
