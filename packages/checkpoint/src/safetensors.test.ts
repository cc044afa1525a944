import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DTYPE_BYTES, type Dtype, SafetensorsError, type TensorData, type TensorEntry } from './dtypes.js';
import { CheckpointError, MdmError, Rng, WriteError, isUserError } from '@matryoshka-ts/core';
import {
  SafetensorsFile,
  type TensorToWrite,
  decodeSafetensors,
  encodeSafetensors,
  headerLength,
  parseHeader,
  readSafetensors,
  writeSafetensors,
} from './safetensors.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mdm-ckpt-st-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});
let fileCounter = 0;
const freshPath = (stem = 'f') => join(dir, `${stem}-${fileCounter++}.safetensors`);

// ---------------------------------------------------------------------------------------------
// Independent helpers: a minimal reader that trusts nothing in the package, and file builders.
// ---------------------------------------------------------------------------------------------

interface RawHeader {
  n: number;
  dataStart: number;
  text: string;
  json: Record<string, { dtype: Dtype; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
}

function rawHeader(bytes: Uint8Array): RawHeader {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const text = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
  return { n, dataStart: 8 + n, text, json: JSON.parse(text) };
}

/** Element `i` of a tensor's raw bytes as the value it encodes (halves as raw bits). */
function rawElement(dtype: Dtype, view: DataView, i: number): number | bigint {
  switch (dtype) {
    case 'F64':
      return view.getFloat64(8 * i, true);
    case 'F32':
      return view.getFloat32(4 * i, true);
    case 'F16':
    case 'BF16':
      return view.getUint16(2 * i, true);
    case 'I64':
      return view.getBigInt64(8 * i, true);
    case 'I32':
      return view.getInt32(4 * i, true);
    case 'U8':
      return view.getUint8(i);
  }
}

/** A file from a header (object or literal text) and data bytes, with a correct length prefix. */
function buildFile(
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  opts: { rawText?: boolean } = {},
): Uint8Array {
  const text = opts.rawText ? (header as string) : JSON.stringify(header);
  const json = typeof text === 'string' ? new TextEncoder().encode(text) : (text as Uint8Array);
  return withPrefix(json, data);
}
function withPrefix(json: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

const sizeOf = (shape: number[]) => shape.reduce((a, d) => a * d, 1);

/** Seeded uniform draws in [0, 1), so failures are reproducible. */
function seededUniform(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.uniform();
}

/** Element-wise identity: NaN equals NaN, −0 differs from +0, bigints compared exactly. */
function expectSameValues(actual: TensorData, expected: ArrayLike<number | bigint>, label: string) {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  const bad: string[] = [];
  for (let i = 0; i < expected.length && bad.length < 5; i++) {
    if (!Object.is(actual[i], expected[i])) bad.push(`[${i}] ${String(actual[i])} ≠ ${String(expected[i])}`);
  }
  expect(bad, label).toEqual([]);
}

const expectedClass: Record<Dtype, unknown> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Float32Array,
  BF16: Float32Array,
  I64: BigInt64Array,
  I32: Int32Array,
  U8: Uint8Array,
};

// Values chosen to be exactly representable in their dtype, so the round trip must be bit-exact
// (no tolerance anywhere in this file). Edge values: extremes, −0, ±∞, NaN, subnormals.
function sampleTensors(): Record<string, TensorToWrite> {
  return {
    f64: {
      dtype: 'F64',
      shape: [3, 3],
      data: new Float64Array([0, -0, 1.5, -1e300, 5e-324, Infinity, -Infinity, Number.NaN, Math.PI]),
    },
    f32: {
      dtype: 'F32',
      shape: [7],
      data: new Float32Array([1, -0, 3.4028234663852886e38, 1.401298464324817e-45, Number.NaN, -Infinity, 0.1]),
    },
    f16: {
      dtype: 'F16',
      shape: [2, 5],
      data: [1, -2, 65504, 2 ** -24, 2 ** -14, -0, Infinity, Number.NaN, 0.333251953125, 1024],
    },
    bf16: {
      dtype: 'BF16',
      shape: [2, 2, 2],
      data: new Float32Array([1, -1, 3.140625, 2 ** -126, 2 ** -133, 3.3895313892515355e38, -Infinity, Number.NaN]),
    },
    i64: { dtype: 'I64', shape: [5], data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 2n ** 53n + 1n]) },
    i32: { dtype: 'I32', shape: [5, 1], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0, -1, 123456]) },
    u8: { dtype: 'U8', shape: [16, 16], data: Uint8Array.from({ length: 256 }, (_, i) => i) },
    // Scalars (shape [] holds one element).
    s_f64: { dtype: 'F64', shape: [], data: [Math.E] },
    s_f32: { dtype: 'F32', shape: [], data: new Float32Array([-7.5]) },
    s_f16: { dtype: 'F16', shape: [], data: [0.5] },
    s_bf16: { dtype: 'BF16', shape: [], data: [-2] },
    s_i64: { dtype: 'I64', shape: [], data: new BigInt64Array([42n]) },
    s_i32: { dtype: 'I32', shape: [], data: [-9] },
    s_u8: { dtype: 'U8', shape: [], data: [7] },
    // Empty tensors (a zero anywhere in the shape).
    e_f64: { dtype: 'F64', shape: [0], data: [] },
    e_f32: { dtype: 'F32', shape: [0], data: new Float32Array(0) },
    e_f16: { dtype: 'F16', shape: [0, 4], data: [] },
    e_bf16: { dtype: 'BF16', shape: [3, 0], data: [] },
    e_i64: { dtype: 'I64', shape: [2, 0, 3], data: new BigInt64Array(0) },
    e_i32: { dtype: 'I32', shape: [0], data: [] },
    e_u8: { dtype: 'U8', shape: [0], data: new Uint8Array(0) },
    // An odd-sized U8 tensor so the narrower tensors after it would be misaligned if ordered badly.
    odd_u8: { dtype: 'U8', shape: [3], data: [1, 2, 3] },
    odd_f16: { dtype: 'F16', shape: [3], data: [1, 2, 3] },
  };
}
const sampleMetadata = { format: 'pt', note: 'ünïcødé ✓ "quoted" \\ back', empty: '' };

function expectMatchesSample(tensors: Map<string, TensorEntry>, label: string) {
  const want = sampleTensors();
  expect([...tensors.keys()].sort(), label).toEqual(Object.keys(want).sort());
  for (const [name, t] of Object.entries(want)) {
    const got = tensors.get(name)!;
    expect(got.dtype, `${label} ${name}`).toBe(t.dtype);
    expect(got.shape, `${label} ${name}`).toEqual(t.shape);
    expect(got.data, `${label} ${name}`).toBeInstanceOf(expectedClass[t.dtype] as new () => unknown);
    expectSameValues(got.data, t.data as ArrayLike<number | bigint>, `${label} ${name}`);
  }
}

function expectAligned(bytes: Uint8Array, label: string) {
  const { n, dataStart, text, json } = rawHeader(bytes);
  expect((8 + n) % 8, `${label}: 8 + header length`).toBe(0);
  expect(/^\{.*\} *$/s.test(text), `${label}: padding is trailing spaces only`).toBe(true);
  const ranges: Array<[number, number]> = [];
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') continue;
    const { dtype, data_offsets } = entry as { dtype: Dtype; data_offsets: [number, number] };
    const absolute = dataStart + data_offsets[0];
    expect(absolute % DTYPE_BYTES[dtype], `${label}: '${name}' (${dtype}) starts at ${absolute}`).toBe(0);
    ranges.push(data_offsets);
  }
  // The writer packs tensors without gaps: the data section is exactly the sum of the tensors.
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [b, e] of ranges) {
    expect(b).toBe(at);
    at = e;
  }
  expect(bytes.byteLength - dataStart, `${label}: data section size`).toBe(at);
}

describe('round trip', () => {
  it('encodeSafetensors → decodeSafetensors restores every dtype, scalar, empty tensor and metadata exactly', () => {
    const bytes = encodeSafetensors(sampleTensors(), sampleMetadata);
    const { tensors, metadata } = decodeSafetensors(bytes);
    expectMatchesSample(tensors, 'decode');
    expect(metadata).toEqual(sampleMetadata);
  });

  it('writeSafetensors → readSafetensors / SafetensorsFile restore the same; file equals in-memory encoding', () => {
    const path = freshPath();
    writeSafetensors(path, sampleTensors(), sampleMetadata);
    const onDisk = new Uint8Array(readFileSync(path));
    expect(Buffer.from(onDisk).equals(Buffer.from(encodeSafetensors(sampleTensors(), sampleMetadata)))).toBe(true);

    const read = readSafetensors(path);
    expectMatchesSample(read.tensors, 'readSafetensors');
    expect(read.metadata).toEqual(sampleMetadata);

    const file = SafetensorsFile.open(path);
    try {
      expect(file.path).toBe(path);
      expect(file.metadata).toEqual(sampleMetadata);
      expect(file.names.sort()).toEqual(Object.keys(sampleTensors()).sort());
      const one = new Map<string, TensorEntry>();
      // Read in reverse name order to show access is random, not sequential.
      for (const name of [...file.names].reverse()) {
        expect(file.has(name)).toBe(true);
        one.set(name, file.read(name));
      }
      expectMatchesSample(one, 'SafetensorsFile.read');
      expect(file.has('nope')).toBe(false);
    } finally {
      file.close();
    }
  });

  it('stores the bytes an independent little-endian reader expects (row-major, halves rounded)', () => {
    const bytes = encodeSafetensors(sampleTensors());
    const { dataStart, json } = rawHeader(bytes);
    const halfBits: Record<string, number[]> = {
      // Hand-derived IEEE binary16 / bfloat16 patterns for the sample values.
      f16: [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x8000, 0x7c00, -1, 0x3555, 0x6400],
      bf16: [0x3f80, 0xbf80, 0x4049, 0x0080, 0x0001, 0x7f7f, 0xff80, -1],
    };
    for (const [name, t] of Object.entries(sampleTensors())) {
      const entry = json[name] as { dtype: Dtype; shape: number[]; data_offsets: [number, number] };
      expect(entry.dtype).toBe(t.dtype);
      expect(entry.shape).toEqual(t.shape);
      const [b, e] = entry.data_offsets;
      expect(e - b).toBe(sizeOf(t.shape) * DTYPE_BYTES[t.dtype]);
      const view = new DataView(bytes.buffer, bytes.byteOffset + dataStart + b, e - b);
      for (let i = 0; i < t.data.length; i++) {
        const raw = rawElement(t.dtype, view, i);
        const want = halfBits[name]?.[i];
        if (want === -1)
          expect((raw as number) & 0x7fff, `${name}[${i}] NaN`).toBeGreaterThan(t.dtype === 'F16' ? 0x7c00 : 0x7f80);
        else if (want !== undefined) expect(raw, `${name}[${i}]`).toBe(want);
        else if (t.dtype === 'F16' || t.dtype === 'BF16') continue;
        else expect(Object.is(raw, (t.data as ArrayLike<number | bigint>)[i]), `${name}[${i}]`).toBe(true);
      }
    }
    // No metadata given: the header carries only the checksums, which readers do not hand back.
    expect(Object.keys(json.__metadata__ as object)).toEqual(['mdm.crc32']);
    expect(decodeSafetensors(bytes).metadata).toEqual({});
  });

  it('accepts a Map as well as a record, with identical output', () => {
    const record = sampleTensors();
    const fromMap = encodeSafetensors(new Map(Object.entries(record)), sampleMetadata);
    const fromRecord = encodeSafetensors(record, sampleMetadata);
    expect(Buffer.from(fromMap).equals(Buffer.from(fromRecord))).toBe(true);
  });

  it('round-trips an empty file (no tensors) with and without metadata', () => {
    const cases: Array<Record<string, string> | undefined> = [undefined, {}, { only: 'metadata' }];
    for (const metadata of cases) {
      const bytes = encodeSafetensors({}, metadata);
      expect(bytes.byteLength % 8).toBe(0);
      const decoded = decodeSafetensors(bytes);
      expect(decoded.tensors.size).toBe(0);
      expect(decoded.metadata).toEqual(metadata ?? {});
    }
  });

  it('round-trips tensor names that are special in JavaScript objects', () => {
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '0', 'a.b.c', 'ünï ✓', ''];
    const tensors = new Map<string, TensorToWrite>(names.map((n, i) => [n, { dtype: 'F32', shape: [1], data: [i] }]));
    const bytes = encodeSafetensors(tensors);
    const { tensors: back } = decodeSafetensors(bytes);
    expect([...back.keys()].sort()).toEqual([...names].sort());
    names.forEach((n, i) => expect([...back.get(n)!.data], n).toEqual([i]));
    expectAligned(bytes, 'special names');
  });
});

describe('alignment', () => {
  it('pads the header so 8 + N is a multiple of 8 and starts each tensor at a multiple of its element size', () => {
    expectAligned(encodeSafetensors(sampleTensors(), sampleMetadata), 'sample');
  });

  it('holds for 300 random mixes of dtypes, odd sizes, names and metadata, which also round-trip', () => {
    const rand = seededUniform(2024);
    const dtypes = Object.keys(DTYPE_BYTES) as Dtype[];
    for (let trial = 0; trial < 300; trial++) {
      const tensors: Record<string, TensorToWrite> = {};
      const count = Math.floor(rand() * 6);
      for (let k = 0; k < count; k++) {
        const dtype = dtypes[Math.floor(rand() * dtypes.length)];
        const rank = Math.floor(rand() * 3);
        const shape = Array.from({ length: rank }, () => Math.floor(rand() * 4));
        const n = sizeOf(shape);
        const data =
          dtype === 'I64'
            ? BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rand() * 2000) - 1000))
            : Array.from({ length: n }, () =>
                dtype === 'U8' ? Math.floor(rand() * 256) : Math.floor(rand() * 200) - 100,
              );
        tensors[`t${k}_${'x'.repeat(Math.floor(rand() * 5))}`] = { dtype, shape, data };
      }
      const metadata = rand() < 0.5 ? { k: 'v'.repeat(Math.floor(rand() * 9)) } : undefined;
      const bytes = encodeSafetensors(tensors, metadata);
      expectAligned(bytes, `trial ${trial}`);
      const back = decodeSafetensors(bytes).tensors;
      for (const [name, t] of Object.entries(tensors))
        expectSameValues(back.get(name)!.data, t.data as ArrayLike<number | bigint>, `trial ${trial} ${name}`);
    }
  });
});

describe('writer validation', () => {
  const cases: Array<[string, Record<string, TensorToWrite>, RegExp]> = [
    ['a tensor named __metadata__', { __metadata__: { dtype: 'F32', shape: [1], data: [1] } }, /reserved/],
    ['an unknown dtype', { x: { dtype: 'F8' as Dtype, shape: [1], data: [1] } }, /unsupported dtype "F8"/],
    [
      'a dtype that is an Object.prototype member',
      { x: { dtype: 'toString' as Dtype, shape: [1], data: [1] } },
      /unsupported dtype "toString"/,
    ],
    [
      'a dtype named __proto__',
      { x: { dtype: '__proto__' as Dtype, shape: [1], data: [1] } },
      /unsupported dtype "__proto__"/,
    ],
    [
      'too few values for the shape',
      { x: { dtype: 'F32', shape: [2, 3], data: [1, 2, 3, 4, 5] } },
      /5 values for shape \[2,3\]/,
    ],
    ['too many values for a scalar', { x: { dtype: 'F32', shape: [], data: [1, 2] } }, /2 values for shape \[\]/],
    [
      'a negative dimension whose product still matches',
      { x: { dtype: 'F32', shape: [-2, -1], data: [1, 2] } },
      /shape/,
    ],
    ['a fractional dimension', { x: { dtype: 'F32', shape: [0.5, 4], data: [1, 2] } }, /shape/],
  ];
  for (const [what, tensors, message] of cases) {
    it(`rejects ${what} with a SafetensorsError`, () => {
      expect(() => encodeSafetensors(tensors)).toThrow(SafetensorsError);
      expect(() => encodeSafetensors(tensors)).toThrow(message);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Malformed files
// ---------------------------------------------------------------------------------------------

const f32x2 = new Uint8Array(new Float32Array([1, 2]).buffer);

const malformed: Array<[string, Uint8Array, RegExp]> = (() => {
  const okEntry = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const lengthPrefix = (n: bigint, rest: Uint8Array = new Uint8Array(0)) => {
    const out = new Uint8Array(8 + rest.byteLength);
    new DataView(out.buffer).setBigUint64(0, n, true);
    out.set(rest, 8);
    return out;
  };
  return [
    ['an empty file', new Uint8Array(0), /too short|ends early/],
    ['a 7-byte file', new Uint8Array(7), /too short|ends early/],
    [
      'a header length past the end of the file',
      lengthPrefix(100n, new TextEncoder().encode('{}')),
      /header length 100 runs past the end of the 10-byte file/,
    ],
    ['a header length of 2^64 − 1', lengthPrefix(2n ** 64n - 1n, new Uint8Array(16)), /runs past the end/],
    ['a header length with only the top byte set', lengthPrefix(1n << 56n, new Uint8Array(16)), /runs past the end/],
    ['invalid JSON', buildFile('{"a": ', f32x2, { rawText: true }), /not valid UTF-8 JSON/],
    [
      'a truncated JSON object',
      buildFile('{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}', f32x2, { rawText: true }),
      /not valid UTF-8 JSON/,
    ],
    [
      'invalid UTF-8 in the header',
      withPrefix(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), new Uint8Array(0)),
      /not valid UTF-8 JSON/,
    ],
    ['an empty header', withPrefix(new Uint8Array(0), new Uint8Array(0)), /not valid UTF-8 JSON/],
    ['a JSON array', buildFile([okEntry], f32x2), /not a JSON object/],
    ['JSON null', buildFile(null), /not a JSON object/],
    ['a JSON number', buildFile(42), /not a JSON object/],
    ['a JSON string', buildFile('x'), /not a JSON object/],
    ['a tensor entry that is a number', buildFile({ x: 3 }), /tensor 'x': entry is not an object/],
    ['a tensor entry that is null', buildFile({ x: null }), /tensor 'x': entry is not an object/],
    ['an unknown dtype', buildFile({ x: { ...okEntry, dtype: 'F8' } }, f32x2), /tensor 'x': unsupported dtype "F8"/],
    ['a lower-case dtype', buildFile({ x: { ...okEntry, dtype: 'f32' } }, f32x2), /unsupported dtype "f32"/],
    [
      'a dtype inherited from Object.prototype',
      buildFile({ x: { ...okEntry, dtype: 'toString' } }, f32x2),
      /unsupported dtype "toString"/,
    ],
    [
      'a dtype of __proto__',
      buildFile({ x: { ...okEntry, dtype: '__proto__' } }, f32x2),
      /unsupported dtype "__proto__"/,
    ],
    ['a missing dtype', buildFile({ x: { shape: [2], data_offsets: [0, 8] } }, f32x2), /unsupported dtype/],
    ['a numeric dtype', buildFile({ x: { ...okEntry, dtype: 4 } }, f32x2), /unsupported dtype 4/],
    [
      'a shape that is not a list',
      buildFile({ x: { ...okEntry, shape: 2 } }, f32x2),
      /tensor 'x': shape must be a list of non-negative integers/,
    ],
    ['a negative dimension', buildFile({ x: { ...okEntry, shape: [-2] } }, f32x2), /shape must be/],
    ['a fractional dimension', buildFile({ x: { ...okEntry, shape: [1.5] } }, f32x2), /shape must be/],
    ['a string dimension', buildFile({ x: { ...okEntry, shape: ['2'] } }, f32x2), /shape must be/],
    [
      'a dimension beyond 2^53',
      buildFile('{"x":{"dtype":"U8","shape":[1e300],"data_offsets":[0,8]}}', f32x2, { rawText: true }),
      /shape must be/,
    ],
    ['a missing shape', buildFile({ x: { dtype: 'F32', data_offsets: [0, 8] } }, f32x2), /shape must be/],
    [
      'missing data_offsets',
      buildFile({ x: { dtype: 'F32', shape: [2] } }, f32x2),
      /data_offsets must be two non-negative integers/,
    ],
    [
      'three data_offsets',
      buildFile({ x: { ...okEntry, data_offsets: [0, 4, 8] } }, f32x2),
      /data_offsets must be two/,
    ],
    [
      'negative data_offsets',
      buildFile({ x: { ...okEntry, data_offsets: [-8, 0] } }, f32x2),
      /data_offsets must be two/,
    ],
    [
      'fractional data_offsets',
      buildFile({ x: { ...okEntry, data_offsets: [0, 7.5] } }, f32x2),
      /data_offsets must be two/,
    ],
    [
      'reversed data_offsets',
      buildFile({ x: { ...okEntry, data_offsets: [8, 0] } }, f32x2),
      /tensor 'x': data_offsets \[8, 0\] are reversed/,
    ],
    [
      'data_offsets past the data section',
      buildFile({ x: { ...okEntry, data_offsets: [4, 12] } }, f32x2),
      /data_offsets \[4, 12\] are out of range \(data section is 8 bytes\)/,
    ],
    [
      'data_offsets far past the data section',
      buildFile({ x: { ...okEntry, data_offsets: [2 ** 40, 2 ** 40 + 8] } }, f32x2),
      /out of range/,
    ],
    [
      'a size too small for shape × dtype',
      buildFile({ x: { ...okEntry, data_offsets: [0, 4] } }, f32x2),
      /tensor 'x': 4 bytes for shape \[2\] of F32 \(expected 8\)/,
    ],
    [
      'a size too large for shape × dtype',
      buildFile({ x: { ...okEntry, shape: [1] } }, f32x2),
      /8 bytes for shape \[1\] of F32 \(expected 4\)/,
    ],
    [
      'a scalar with zero bytes',
      buildFile({ x: { dtype: 'F64', shape: [], data_offsets: [0, 0] } }, f32x2),
      /expected 8/,
    ],
    [
      'a shape whose product overflows',
      buildFile({ x: { dtype: 'U8', shape: Array(30).fill(2 ** 50), data_offsets: [0, 8] } }, f32x2),
      /expected/,
    ],
    [
      'overlapping tensors',
      buildFile(
        {
          a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          b: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        },
        f32x2,
      ),
      /tensors '\w' and '\w' overlap/,
    ],
    [
      'partially overlapping tensors',
      buildFile(
        { a: { dtype: 'U8', shape: [5], data_offsets: [0, 5] }, b: { dtype: 'U8', shape: [4], data_offsets: [4, 8] } },
        f32x2,
      ),
      /tensors 'a' and 'b' overlap/,
    ],
    [
      'a non-string metadata value',
      buildFile({ __metadata__: { k: 1 }, x: okEntry }, f32x2),
      /__metadata__\.k is not a string/,
    ],
    ['a null metadata value', buildFile({ __metadata__: { a: 'ok', k: null } }), /__metadata__\.k is not a string/],
    ['a nested metadata value', buildFile({ __metadata__: { k: { deep: 'x' } } }), /__metadata__\.k is not a string/],
    ['metadata that is a string', buildFile({ __metadata__: 'x' }), /__metadata__ is not an object/],
    ['metadata that is a list', buildFile({ __metadata__: ['x'] }), /__metadata__ is not an object/],
  ];
})();

describe('malformed files', () => {
  for (const [what, bytes, message] of malformed) {
    it(`rejects ${what} with a SafetensorsError, in memory and on disk`, () => {
      let caught: unknown;
      try {
        decodeSafetensors(bytes, 'mem.safetensors');
      } catch (error) {
        caught = error;
      }
      expect(caught, 'decodeSafetensors must throw').toBeInstanceOf(SafetensorsError);
      expect((caught as Error).message).toMatch(message);
      expect((caught as Error).message.startsWith('mem.safetensors: ')).toBe(true);
      expect((caught as SafetensorsError).path).toBe('mem.safetensors');
      expect((caught as Error).name).toBe('SafetensorsError');

      const path = freshPath('bad');
      writeFileSync(path, bytes);
      caught = undefined;
      try {
        SafetensorsFile.open(path);
      } catch (error) {
        caught = error;
      }
      expect(caught, 'SafetensorsFile.open must throw').toBeInstanceOf(SafetensorsError);
      expect((caught as Error).message).toMatch(message);
      expect((caught as SafetensorsError).path).toBe(path);
      expect(() => readSafetensors(path)).toThrow(SafetensorsError);
    });
  }

  it('accepts tensors that merely touch, gaps between tensors, and empty tensors at a boundary', () => {
    const data = new Uint8Array(16);
    const bytes = buildFile(
      {
        a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] },
        b: { dtype: 'U8', shape: [4], data_offsets: [4, 8] },
        gap_then_c: { dtype: 'U8', shape: [2], data_offsets: [12, 14] },
        empty: { dtype: 'F32', shape: [0], data_offsets: [8, 8] },
      },
      data,
    );
    expect([...decodeSafetensors(bytes).tensors.keys()].sort()).toEqual(['a', 'b', 'empty', 'gap_then_c']);
  });

  it('headerLength rejects a header above the format’s 100 MB limit even when the file is large enough', () => {
    const first8 = new Uint8Array(8);
    new DataView(first8.buffer).setBigUint64(0, 100_000_001n, true);
    expect(() => headerLength(first8, 200_000_000, 'big')).toThrow(SafetensorsError);
    expect(() => headerLength(first8, 200_000_000, 'big')).toThrow(/exceeds the 100 MB limit/);
    new DataView(first8.buffer).setBigUint64(0, 100_000_000n, true);
    expect(headerLength(first8, 200_000_000)).toBe(100_000_000);
  });

  it('parseHeader reports absolute positions', () => {
    const json = new TextEncoder().encode(JSON.stringify({ x: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }));
    const header = parseHeader(json, 8 + json.byteLength + 12);
    expect(header.dataStart).toBe(8 + json.byteLength);
    expect(header.tensors.get('x')).toEqual({
      dtype: 'F32',
      shape: [2],
      begin: header.dataStart + 4,
      end: header.dataStart + 12,
    });
  });

  it('SafetensorsFile reports a missing file, an unknown tensor and use after close as SafetensorsError', () => {
    const missing = join(dir, 'does-not-exist.safetensors');
    expect(() => SafetensorsFile.open(missing)).toThrow(SafetensorsError);
    expect(() => SafetensorsFile.open(missing)).toThrow(/cannot open/);
    const path = freshPath();
    writeSafetensors(path, { x: { dtype: 'F32', shape: [1], data: [1] } });
    const file = SafetensorsFile.open(path);
    expect(() => file.info('y')).toThrow(SafetensorsError);
    expect(() => file.read('y')).toThrow(/no tensor named 'y'/);
    file.close();
    expect(() => file.read('x')).toThrow(SafetensorsError);
    expect(() => file.read('x')).toThrow(/closed/);
    expect(() => file.close()).not.toThrow(); // closing twice is harmless
  });

  it('SafetensorsError is a user error: CHECKPOINT_MISSING for an absent file, CHECKPOINT_INVALID when corrupt', () => {
    const missing = join(dir, 'absent.safetensors');
    expect(() => SafetensorsFile.open(missing)).toThrow(CheckpointError);
    expect(() => SafetensorsFile.open(missing)).toThrow(/cannot open/);
    const thrown = (f: () => unknown): unknown => {
      try {
        f();
      } catch (error) {
        return error;
      }
      throw new Error('expected an error, nothing was thrown');
    };
    expect(thrown(() => readSafetensors(missing))).toMatchObject({ code: 'CHECKPOINT_MISSING', path: missing });
    const corrupt = freshPath();
    writeFileSync(corrupt, new Uint8Array(4));
    const caught = thrown(() => readSafetensors(corrupt));
    expect(caught).toBeInstanceOf(SafetensorsError);
    expect(caught).toBeInstanceOf(CheckpointError);
    expect(caught).toBeInstanceOf(MdmError);
    expect(isUserError(caught)).toBe(true);
    expect(caught).toMatchObject({ code: 'CHECKPOINT_INVALID', name: 'SafetensorsError', path: corrupt });
    expect((caught as Error).message).toBe(`${corrupt}: file ends early at byte 4`);
  });

  it('SafetensorsFile reports a file truncated after it was opened', () => {
    const path = freshPath();
    writeSafetensors(path, { x: { dtype: 'F64', shape: [4], data: [1, 2, 3, 4] } });
    const file = SafetensorsFile.open(path);
    try {
      const whole = readFileSync(path);
      writeFileSync(path, whole.subarray(0, whole.byteLength - 8)); // same inode, shorter
      expect(() => file.read('x')).toThrow(SafetensorsError);
      expect(() => file.read('x')).toThrow(/ends early/);
    } finally {
      file.close();
    }
  });
});

describe('fuzz: corrupted and truncated files', () => {
  it('either decode or throw SafetensorsError, for 600 seeded corruptions', () => {
    const base = encodeSafetensors(
      {
        w: { dtype: 'F32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
        h: { dtype: 'F16', shape: [3], data: [1, 2, 3] },
        b: { dtype: 'BF16', shape: [2], data: [1, 2] },
        t: { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n]) },
        d: { dtype: 'F64', shape: [], data: [0.5] },
        i: { dtype: 'I32', shape: [1, 1], data: [3] },
        u: { dtype: 'U8', shape: [5], data: [1, 2, 3, 4, 5] },
      },
      { k: 'v' },
    );
    const { dataStart } = rawHeader(base);
    const rand = seededUniform(99);
    const pick = (n: number) => Math.floor(rand() * n);
    const structural = new TextEncoder().encode('{}[]:,"-0123456789eE.  ntfu\\');
    const original = decodeSafetensors(base);
    let ok = 0;
    let rejected = 0;
    const others: string[] = [];
    for (let trial = 0; trial < 600; trial++) {
      let bytes = Uint8Array.from(base);
      const kind = trial % 6;
      if (kind === 0) {
        // Truncate anywhere.
        bytes = bytes.slice(0, pick(bytes.byteLength));
      } else if (kind === 1) {
        // Flip random bits, mostly inside the header where they matter.
        for (let k = 1 + pick(4); k > 0; k--) bytes[pick(dataStart)] ^= 1 << pick(8);
      } else if (kind === 2) {
        // Overwrite header bytes with JSON-significant characters.
        for (let k = 1 + pick(3); k > 0; k--) bytes[8 + pick(dataStart - 8)] = structural[pick(structural.length)];
      } else if (kind === 3) {
        // Corrupt the length prefix.
        bytes[pick(8)] = pick(256);
      } else if (kind === 4) {
        // Delete or insert a run of bytes (shifts everything after it).
        const at = pick(bytes.byteLength);
        const len = 1 + pick(8);
        if (rand() < 0.5) bytes = Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + len)]);
        else
          bytes = Uint8Array.from([
            ...bytes.subarray(0, at),
            ...Array.from({ length: len }, () => pick(256)),
            ...bytes.subarray(at),
          ]);
      } else {
        // Randomise a whole byte anywhere, then maybe truncate too.
        bytes[pick(bytes.byteLength)] = pick(256);
        if (rand() < 0.3) bytes = bytes.slice(0, bytes.byteLength - 1 - pick(16));
      }
      const attempt = (f: () => { tensors: Map<string, TensorEntry>; metadata: Record<string, string> }) => {
        try {
          const decoded = f();
          // The checksums leave one way to decode: unchanged (e.g. a flipped bit in the header's padding).
          try {
            expect(decoded).toEqual(original);
          } catch {
            others.push(
              `trial ${trial}: a changed file decoded to different tensors or metadata: ` +
                JSON.stringify(decoded.metadata),
            );
          }
          return true;
        } catch (error) {
          if (!(error instanceof SafetensorsError))
            others.push(`trial ${trial}: ${(error as Error)?.name}: ${(error as Error)?.message}`);
          return false;
        }
      };
      if (attempt(() => decodeSafetensors(bytes))) ok++;
      else rejected++;
      if (trial % 10 === 0) {
        const path = freshPath('fuzz');
        writeFileSync(path, bytes);
        attempt(() => readSafetensors(path));
        rmSync(path);
      }
    }
    expect(others).toEqual([]);
    // Nearly every change is refused; the few accepted ones changed nothing that is read.
    expect(rejected).toBeGreaterThan(550);
    expect(ok + rejected).toBe(600);
  });
});

// ---------------------------------------------------------------------------------------------
// Atomic writes
// ---------------------------------------------------------------------------------------------

describe('writeSafetensors is atomic', () => {
  const tmpLeftovers = (folder: string) => readdirSync(folder).filter((f) => f.includes('.tmp-'));
  const small = { x: { dtype: 'F32' as const, shape: [2], data: [1, 2] } };

  it('replaces an existing (longer) file entirely and leaves no temp file', () => {
    const folder = mkdtempSync(join(dir, 'atomic-'));
    const path = join(folder, 'model.safetensors');
    writeFileSync(path, new Uint8Array(10_000).fill(0xab));
    writeSafetensors(path, small, { v: '2' });
    const now = new Uint8Array(readFileSync(path));
    expect(Buffer.from(now).equals(Buffer.from(encodeSafetensors(small, { v: '2' })))).toBe(true);
    expect(readSafetensors(path).metadata).toEqual({ v: '2' });
    expect(readdirSync(folder)).toEqual(['model.safetensors']);
    expect(tmpLeftovers(folder)).toEqual([]);
  });

  it('leaves the previous file untouched when the tensors are invalid (shape mismatch, bad dtype)', () => {
    const folder = mkdtempSync(join(dir, 'atomic-'));
    const path = join(folder, 'model.safetensors');
    writeSafetensors(path, small, { v: '1' });
    const before = readFileSync(path);
    const bad: Array<Record<string, TensorToWrite>> = [
      { ...small, y: { dtype: 'F32', shape: [3, 3], data: [1, 2, 3] } },
      { ...small, y: { dtype: 'Q4' as Dtype, shape: [1], data: [1] } },
      { ...small, y: { dtype: 'valueOf' as Dtype, shape: [1], data: [1] } },
    ];
    for (const tensors of bad) {
      expect(() => writeSafetensors(path, tensors, { v: 'bad' })).toThrow(SafetensorsError);
      expect(readFileSync(path).equals(before)).toBe(true);
      expect(tmpLeftovers(folder)).toEqual([]);
    }
  });

  it('leaves the previous file untouched and removes the temp file when encoding fails midway', () => {
    const folder = mkdtempSync(join(dir, 'atomic-'));
    const path = join(folder, 'model.safetensors');
    writeSafetensors(path, small, { v: '1' });
    const before = readFileSync(path);
    // plan() accepts this (right count, valid dtype); the NaN only fails when the I64 values are
    // converted, after the temp file has been opened and the header and the F64 tensor written.
    const failing: Record<string, TensorToWrite> = {
      a_first: { dtype: 'F64', shape: [1000], data: new Float64Array(1000).fill(1) },
      z_then: { dtype: 'I64', shape: [2], data: [1, Number.NaN] },
    };
    expect(() => writeSafetensors(path, failing)).toThrow();
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(tmpLeftovers(folder)).toEqual([]);
    expect(readSafetensors(path).tensors.get('x')!.data).toEqual(new Float32Array([1, 2]));
  });

  it('creates a new file, and fails without leftovers when the target is a directory or its folder is missing', () => {
    const folder = mkdtempSync(join(dir, 'atomic-'));
    const fresh = join(folder, 'new.safetensors');
    writeSafetensors(fresh, small);
    expect(existsSync(fresh)).toBe(true);

    const asDir = join(folder, 'is-a-dir.safetensors');
    mkdirSync(asDir);
    expect(() => writeSafetensors(asDir, small)).toThrow();
    expect(tmpLeftovers(folder)).toEqual([]);
    expect(readdirSync(asDir)).toEqual([]);

    expect(() => writeSafetensors(join(folder, 'missing', 'x.safetensors'), small)).toThrow();
    expect(readdirSync(folder).sort()).toEqual(['is-a-dir.safetensors', 'new.safetensors']);
  });
});

describe('orphan temp files', () => {
  it("the next successful write removes a killed writer's <path>.tmp-<pid>, not a live process's", () => {
    const dir = mkdtempSync(join(tmpdir(), 'mdm-orphans-'));
    const path = join(dir, 'checkpoint.safetensors');
    // pid 2^22 + 1 is above Linux's pid_max limit (4,194,304): no process has it.
    const dead = `${path}.tmp-4194305`;
    const alive = `${path}.tmp-${process.ppid}`;
    const other = join(dir, 'other.safetensors.tmp-4194305');
    for (const f of [dead, alive, other]) writeFileSync(f, 'half a checkpoint');
    writeSafetensors(path, { x: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } });
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(alive)).toBe(true);
    expect(existsSync(other)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(
      ['checkpoint.safetensors', basename(alive), 'other.safetensors.tmp-4194305'].sort(),
    );
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('write failures name the file', () => {
  // /dev/full (Linux) fails every write with ENOSPC, as a full disk does.
  it.skipIf(!existsSync('/dev/full'))('a full disk (ENOSPC) names the file and leaves the last good one intact', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mdm-full-'));
    const path = join(dir, 'checkpoint.safetensors');
    const one = { x: { dtype: 'F32' as const, shape: [1], data: new Float32Array([1]) } };
    writeSafetensors(path, one);
    const good = readFileSync(path);
    symlinkSync('/dev/full', `${path}.tmp-${process.pid}`);
    expect(() => writeSafetensors(path, one)).toThrow(WriteError);
    symlinkSync('/dev/full', `${path}.tmp-${process.pid}`);
    expect(() => writeSafetensors(path, one)).toThrow(`cannot write ${path}: the disk is full (ENOSPC)`);
    expect(readFileSync(path).equals(good)).toBe(true);
    expect(existsSync(`${path}.tmp-${process.pid}`)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });
});

// ---------------------------------------------------------------------------------------------
// Checksums: a changed byte is refused, naming the file and the tensor
// ---------------------------------------------------------------------------------------------

describe('checksums', () => {
  const tensors = {
    a: { dtype: 'F32' as const, shape: [4], data: [1, 2, 3, 4] },
    b: { dtype: 'F32' as const, shape: [2], data: [5, 6] },
  };
  const written = (metadata?: Record<string, string>) => {
    const path = freshPath('crc');
    writeSafetensors(path, tensors, metadata);
    return path;
  };

  it('stores a CRC-32 of each tensor that an independent zlib computation matches', async () => {
    const bytes = new Uint8Array(readFileSync(written()));
    const { dataStart, json } = rawHeader(bytes);
    const sums = JSON.parse((json.__metadata__ as Record<string, string>)['mdm.crc32']);
    const { crc32 } = await import('node:zlib');
    for (const name of ['a', 'b']) {
      const [b, e] = (json[name] as { data_offsets: [number, number] }).data_offsets;
      const want = (crc32 as (d: Uint8Array) => number)(bytes.subarray(dataStart + b, dataStart + e));
      expect(sums.tensors[name]).toBe(want.toString(16).padStart(8, '0'));
    }
  });

  it('refuses a tensor whose data changed, naming the file and the tensor; the others still read', () => {
    const path = written({ step: '7' });
    const bytes = new Uint8Array(readFileSync(path));
    const { dataStart, json } = rawHeader(bytes);
    const [b] = (json.b as { data_offsets: [number, number] }).data_offsets;
    bytes[dataStart + b + 1] ^= 0x10;
    writeFileSync(path, bytes);
    const file = SafetensorsFile.open(path);
    try {
      expect(Array.from(file.read('a').data as Float32Array)).toEqual([1, 2, 3, 4]);
      expect(() => file.read('b')).toThrow(SafetensorsError);
      expect(() => file.read('b')).toThrow(new RegExp(`^${path}: tensor 'b': checksum mismatch`));
    } finally {
      file.close();
    }
    expect(() => decodeSafetensors(bytes, path)).toThrow(/tensor 'b': checksum mismatch/);
  });

  it('refuses a header whose values changed (same length), though the JSON still parses', () => {
    const path = written({ progress: '{"step":100}' });
    const text = readFileSync(path).toString('latin1').replace('\\"step\\":100', '\\"step\\":900');
    writeFileSync(path, Buffer.from(text, 'latin1'));
    expect(() => SafetensorsFile.open(path)).toThrow(/header checksum mismatch/);
  });

  it('refuses a file whose checksum entry lost its key (it is not read unchecked)', () => {
    const path = written({ k: 'v' });
    const text = readFileSync(path).toString('latin1').replace('"mdm.crc32"', '"mdm.cr 32"');
    writeFileSync(path, Buffer.from(text, 'latin1'));
    expect(() => SafetensorsFile.open(path)).toThrow(/"mdm\.cr 32" is a damaged checksum entry/);
  });

  it('accepts whitespace changes in the header padding (nothing that is read changed)', () => {
    // A metadata length whose header the writer pads to a multiple of 8 bytes.
    const bytes = [1, 2, 3, 4, 5, 6, 7, 8]
      .map((i) => encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: [1] } }, { k: 'v'.repeat(i) }))
      .find((b) => rawHeader(b).text.endsWith(' '))!;
    const { n } = rawHeader(bytes);
    const padded = Uint8Array.from(bytes);
    padded[8 + n - 1] = 0x0a; // a newline in place of a padding space: still valid JSON whitespace
    expect(decodeSafetensors(padded)).toEqual(decodeSafetensors(bytes));
  });

  it('loads files without checksums (imports from other writers) unchecked', () => {
    const data = new Uint8Array(new Float32Array([1, 2]).buffer);
    const bytes = buildFile(
      { __metadata__: { source: 'torch' }, x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } },
      data,
    );
    const decoded = decodeSafetensors(bytes);
    expect(Array.from(decoded.tensors.get('x')!.data as Float32Array)).toEqual([1, 2]);
    expect(decoded.metadata).toEqual({ source: 'torch' });
  });

  it("replaces a stale checksum entry copied from another file's metadata", () => {
    const first = SafetensorsFile.open(written({ k: 'v' }));
    const stale = { ...first.metadata, 'mdm.crc32': '{"header":"00000000","tensors":{}}' };
    first.close();
    const path = written(stale);
    expect(readSafetensors(path).metadata).toEqual({ k: 'v' });
  });

  it('names a tensor too large for one array instead of failing with "Invalid typed array length"', () => {
    // A sparse file: the header declares a 5 GB tensor; nothing is allocated until it is read.
    const size = 5_000_000_000;
    const header = buildFile({ big: { dtype: 'U8', shape: [size], data_offsets: [0, size] } });
    const path = freshPath('huge');
    writeFileSync(path, header);
    const fd = openSync(path, 'r+');
    ftruncateSync(fd, header.byteLength + size);
    closeSync(fd);
    const file = SafetensorsFile.open(path);
    try {
      expect(() => file.read('big')).toThrow(/tensor 'big' is 5\.0 GB: more than one array can hold here/);
    } finally {
      file.close();
      rmSync(path);
    }
  });
});

describe('a damaged checksum entry', () => {
  it('is never taken for a file without checksums: key and value start both changed (up to 2 bytes each)', () => {
    const path = freshPath('crc-key');
    writeSafetensors(path, { x: { dtype: 'F32', shape: [1], data: [1] } }, { k: 'v' });
    const text = readFileSync(path).toString('latin1');
    // The probe's case: a bit flipped in the key and one in the value's first word.
    const damaged = text.replace('"mdm.crc32"', '"mlm.crc22"').replace('{\\"header\\"', '{\\"haader\\"');
    expect(damaged).not.toBe(text);
    writeFileSync(path, Buffer.from(damaged, 'latin1'));
    expect(() => SafetensorsFile.open(path)).toThrow(/"mlm\.crc22" is a damaged checksum entry/);
  });

  it("leaves other writers' metadata alone", () => {
    const data = new Uint8Array(new Float32Array([1]).buffer);
    const meta = { format: 'pt', 'mdm.notes': 'x', crc: '{"head":1}' };
    const bytes = buildFile({ __metadata__: meta, x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, data);
    expect(decodeSafetensors(bytes).metadata).toEqual(meta);
  });
});
