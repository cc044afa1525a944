import { CheckpointError } from '@matryoshka-ts/core';

/** safetensors element types this package reads and writes. */
export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8';

/** Decoded element storage: half floats are widened to float32 on read. */
export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

/** One tensor: dtype as stored in the file, row-major shape, decoded values. */
export interface TensorEntry {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

export const DTYPE_BYTES: Record<Dtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1 };

export function isDtype(value: unknown): value is Dtype {
  // Own keys only: `in` would also accept Object.prototype members such as 'toString' or '__proto__'.
  return typeof value === 'string' && Object.hasOwn(DTYPE_BYTES, value);
}

/**
 * The error every malformed file raises: the path (when known) and what is wrong. A user error
 * (`CheckpointError`, code CHECKPOINT_INVALID; CHECKPOINT_MISSING for a file that does not exist).
 */
export class SafetensorsError extends CheckpointError {
  constructor(
    message: string,
    readonly path?: string,
    options?: { code?: 'CHECKPOINT_INVALID' | 'CHECKPOINT_MISSING'; cause?: unknown },
  ) {
    super(path ? `${path}: ${message}` : message, options);
    this.name = 'SafetensorsError';
  }
}

// IEEE half → float32, bit-exact (subnormals, infinities and NaN included).
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

// float32 → IEEE half with round-to-nearest-even (what numpy and PyTorch do).
function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half += 1; // may carry into the exponent: correct
  return sign | half;
}

// float32 → bfloat16 with round-to-nearest-even; NaN stays NaN.
function floatToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Decodes `count` little-endian elements of `dtype` from `bytes`. */
export function decodeElements(dtype: Dtype, bytes: Uint8Array, count: number): TensorData {
  if (LITTLE_ENDIAN_HOST) {
    // Fast path: copy the bytes into a fresh (aligned) buffer and view them. Not `bytes.slice`:
    // on a Node Buffer (a file read whole) that is a view of a larger, shared buffer.
    const copy = (n: number) => {
      const out = new Uint8Array(count * n);
      out.set(bytes.subarray(0, count * n));
      return out.buffer;
    };
    if (dtype === 'F32') return new Float32Array(copy(4));
    if (dtype === 'F64') return new Float64Array(copy(8));
    if (dtype === 'I32') return new Int32Array(copy(4));
    if (dtype === 'I64') return new BigInt64Array(copy(8));
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    }
    case 'F64': {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) {
        u32[0] = view.getUint16(i * 2, true) << 16;
        out[i] = f32[0];
      }
      return out;
    }
    case 'I64': {
      const out = new BigInt64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getBigInt64(i * 8, true);
      return out;
    }
    case 'I32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
      return out;
    }
    case 'U8':
      return new Uint8Array(bytes.subarray(0, count));
  }
}

/** Encodes values as little-endian `dtype` bytes (float32 → F16/BF16 rounds to nearest even). */
export function encodeElements(dtype: Dtype, data: ArrayLike<number | bigint>): Uint8Array {
  const n = data.length;
  const out = new Uint8Array(n * DTYPE_BYTES[dtype]);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    const v = data[i];
    switch (dtype) {
      case 'F32':
        view.setFloat32(i * 4, Number(v), true);
        break;
      case 'F64':
        view.setFloat64(i * 8, Number(v), true);
        break;
      case 'F16':
        view.setUint16(i * 2, floatToHalf(Number(v)), true);
        break;
      case 'BF16':
        view.setUint16(i * 2, floatToBf16(Number(v)), true);
        break;
      case 'I64':
        view.setBigInt64(i * 8, typeof v === 'bigint' ? v : BigInt(Math.trunc(v)), true);
        break;
      case 'I32':
        view.setInt32(i * 4, Number(v), true);
        break;
      case 'U8':
        view.setUint8(i, Number(v));
        break;
    }
  }
  return out;
}

/** A tensor's values as plain numbers (int64 → number; exact below 2^53). */
export function toNumbers(data: TensorData): number[] {
  return Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
}

/** A tensor's values as a Float32Array (float64 and integers are converted). */
export function toFloat32(data: TensorData): Float32Array {
  if (data instanceof Float32Array) return data;
  return Float32Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
}
