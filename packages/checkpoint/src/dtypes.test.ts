import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DTYPE_BYTES, type Dtype, decodeElements, encodeElements, toFloat32, toNumbers } from './dtypes.js';
import { Rng } from '@matryoshka-ts/core';

// ---------------------------------------------------------------------------------------------
// Independent references. They do not reuse the package's bit tricks: decoding assembles float64
// bit patterns, encoding picks the nearest representable value by binary search over a table of
// every finite value (ties to the even bit pattern), comparing 2|x| with lo + hi, which is exact
// in float64 because every candidate has at most 24 significant bits.
// ---------------------------------------------------------------------------------------------

const f64Scratch = new DataView(new ArrayBuffer(8));

/** float64 from sign, unbiased exponent and a mantissa given as its top bits. */
function assemble(sign: number, exponent: number, mantissa: number, mantissaBits: number): number {
  f64Scratch.setUint32(0, ((sign << 31) | ((exponent + 1023) << 20) | (mantissa << (20 - mantissaBits))) >>> 0);
  f64Scratch.setUint32(4, 0);
  return f64Scratch.getFloat64(0);
}

/** IEEE binary16 bits → value (reference). */
function refHalfToNumber(h: number): number {
  const sign = h >> 15;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 31) return m ? Number.NaN : sign ? -Infinity : Infinity;
  if (e === 0) return (sign ? -1 : 1) * (m / 16777216); // m · 2^-24, exact
  return assemble(sign, e - 15, m, 10);
}

/** bfloat16 bits → value (reference). */
function refBf16ToNumber(h: number): number {
  const sign = h >> 15;
  const e = (h >> 7) & 0xff;
  const m = h & 0x7f;
  if (e === 255) return m ? Number.NaN : sign ? -Infinity : Infinity;
  if (e === 0) return (sign ? -1 : 1) * m * 2 ** -133; // m/128 · 2^-126, exact
  return assemble(sign, e - 127, m, 7);
}

/**
 * Round-to-nearest-even encoder driven by a table of every non-negative finite value in bit
 * order plus the infinity pattern, which for rounding purposes stands for the next power of two
 * (IEEE: a value overflows to ∞ exactly when it is ≥ max + ulp/2).
 */
function makeRefEncoder(decode: (h: number) => number, infBits: number, infStandIn: number) {
  const table = new Float64Array(infBits + 1);
  for (let h = 0; h < infBits; h++) table[h] = decode(h);
  table[infBits] = infStandIn;
  for (let h = 1; h <= infBits; h++) if (!(table[h] > table[h - 1])) throw new Error('reference table not increasing');
  return (x: number): number => {
    if (Number.isNaN(x)) return -1; // caller checks NaN separately
    const signBit = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const ax = Math.abs(x);
    if (ax >= infStandIn) return signBit | infBits;
    let lo = 0;
    let hi = infBits; // invariant: table[lo] <= ax < table[hi]
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (table[mid] <= ax) lo = mid;
      else hi = mid;
    }
    if (table[lo] === ax) return signBit | lo;
    const twice = 2 * ax;
    const midpoint = table[lo] + table[hi];
    const pick = twice < midpoint ? lo : twice > midpoint ? hi : lo % 2 === 0 ? lo : hi;
    return signBit | pick;
  };
}

const refFloatToHalf = makeRefEncoder(refHalfToNumber, 0x7c00, 65536);
const refFloatToBf16 = makeRefEncoder(refBf16ToNumber, 0x7f80, 2 ** 128);

function u16(bytes: Uint8Array): Uint16Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Uint16Array.from({ length: bytes.byteLength / 2 }, (_, i) => view.getUint16(2 * i, true));
}
function encodeHalf(values: ArrayLike<number>): Uint16Array {
  return u16(encodeElements('F16', values));
}
function encodeBf16(values: ArrayLike<number>): Uint16Array {
  return u16(encodeElements('BF16', values));
}
function bytesOfU16(bits: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(bits.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < bits.length; i++) view.setUint16(2 * i, bits[i], true);
  return out;
}
const hex = (h: number) => `0x${h.toString(16).padStart(4, '0')}`;
const isHalfNaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const isBf16NaN = (h: number) => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;

/** Seeded uniform draws in [0, 1), so failures are reproducible. */
function seededUniform(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.uniform();
}

/** `n` float32 values with uniformly random bit patterns (every exponent equally likely). */
function randomFloat32Bits(n: number, seed: number): Float32Array {
  const rand = seededUniform(seed);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = Math.floor(rand() * 2 ** 32);
  return new Float32Array(bits.buffer);
}

/** The float32 immediately above (towards +∞ for positive values) / below a positive float32. */
function f32Neighbours(x: number): [number, number] {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const base = u[0];
  u[0] = base + 1;
  const up = f[0];
  u[0] = base - 1;
  const down = f[0];
  return [down, up];
}

/** Every finite non-negative value of a 16-bit format (bit order) and the midpoints between neighbours. */
function midpoints(decode: (h: number) => number, infBits: number, infStandIn: number) {
  const mids: number[] = [];
  const lows: number[] = [];
  for (let h = 0; h < infBits; h++) {
    const next = h + 1 === infBits ? infStandIn : decode(h + 1);
    mids.push((decode(h) + next) / 2);
    lows.push(h);
  }
  return { mids, lows };
}

describe('reference self-check', () => {
  it('reference decoders agree with hand-computed values', () => {
    // The reference is itself code, so pin it to facts from the IEEE 754 / bfloat16 definitions.
    expect(refHalfToNumber(0x3c00)).toBe(1);
    expect(refHalfToNumber(0x7bff)).toBe(65504);
    expect(refHalfToNumber(0x0001)).toBe(2 ** -24);
    expect(refHalfToNumber(0x0400)).toBe(2 ** -14);
    expect(refHalfToNumber(0x03ff)).toBe(1023 * 2 ** -24);
    expect(refHalfToNumber(0xc000)).toBe(-2);
    expect(refHalfToNumber(0x3555)).toBe(0.333251953125);
    expect(Object.is(refHalfToNumber(0x8000), -0)).toBe(true);
    expect(refBf16ToNumber(0x3f80)).toBe(1);
    expect(refBf16ToNumber(0x4049)).toBe(3.140625);
    expect(refBf16ToNumber(0x7f7f)).toBe(3.3895313892515355e38);
    expect(refBf16ToNumber(0x0001)).toBe(2 ** -133);
    expect(refFloatToHalf(1 + 2 ** -11)).toBe(0x3c00);
    expect(refFloatToBf16(1 + 2 ** -8)).toBe(0x3f80);
  });
});

describe('F16 (IEEE binary16)', () => {
  it('decodes known bit patterns', () => {
    const cases: Array<[number, number]> = [
      [0x3c00, 1],
      [0xbc00, -1],
      [0x4000, 2],
      [0x3800, 0.5],
      [0x7bff, 65504], // largest finite half
      [0xfbff, -65504],
      [0x0400, 2 ** -14], // smallest normal
      [0x0001, 2 ** -24], // smallest subnormal
      [0x03ff, 1023 * 2 ** -24], // largest subnormal
      [0x3555, 0.333251953125],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
      [0x0000, 0],
      [0x8000, -0],
    ];
    const decoded = decodeElements('F16', bytesOfU16(cases.map((c) => c[0])), cases.length);
    expect(decoded).toBeInstanceOf(Float32Array);
    cases.forEach(([bits, value], i) =>
      expect(Object.is(decoded[i], value), `${hex(bits)} → ${decoded[i]}, want ${value}`).toBe(true),
    );
    const nans = decodeElements('F16', bytesOfU16([0x7e00, 0x7c01, 0xfe00, 0x7fff]), 4);
    for (const v of nans) expect(v).toBeNaN();
  });

  it('encodes known values to the right bit patterns', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [2 ** -14, 0x0400],
      [2 ** -24, 0x0001],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [0, 0x0000],
      [-0, 0x8000],
      [Math.fround(1 / 3), 0x3555],
      // Round to nearest, ties to even:
      [1 + 2 ** -11, 0x3c00], // exactly halfway between 0x3c00 (even) and 0x3c01 → down
      [1 + 3 * 2 ** -11, 0x3c02], // halfway between 0x3c01 (odd) and 0x3c02 → up
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie → up
      [1 + 2 ** -11 - 2 ** -20, 0x3c00], // just below the tie → down
      [65519, 0x7bff], // below max + ulp/2 → max
      [65520, 0x7c00], // max + ulp/2 ties to the even pattern, which is ∞
      [1e6, 0x7c00], // overflow
      [-1e6, 0xfc00],
      [2 ** -25, 0x0000], // halfway between 0 and the smallest subnormal → 0 (even)
      [3 * 2 ** -25, 0x0002], // halfway between 0x0001 and 0x0002 → 0x0002 (even)
      [2 ** -25 + 2 ** -40, 0x0001], // just above halfway → smallest subnormal
      [-(2 ** -26), 0x8000], // underflow keeps the sign
      [1e-8, 0x0000],
      [2 ** -14 - 2 ** -25, 0x0400], // halfway between the largest subnormal (odd) and the smallest normal → up
      [2047, 0x67ff],
      [2049, 0x6800], // halfway between 2048 (even) and 2050 → 2048
      [2051, 0x6802], // halfway between 2050 (odd) and 2052 → 2052
    ];
    const got = encodeHalf(cases.map((c) => c[0]));
    cases.forEach(([value, bits], i) => expect(hex(got[i]), `encode ${value}`).toBe(hex(bits)));
    for (const h of encodeHalf([Number.NaN, -Number.NaN])) expect(isHalfNaN(h), hex(h)).toBe(true);
  });

  it('decodes all 65536 bit patterns like the reference', () => {
    const all = Array.from({ length: 65536 }, (_, h) => h);
    const decoded = decodeElements('F16', bytesOfU16(all), 65536);
    let mismatches = 0;
    for (let h = 0; h < 65536; h++) {
      const want = refHalfToNumber(h);
      if (!(Number.isNaN(want) ? Number.isNaN(decoded[h]) : Object.is(decoded[h], want))) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it('re-encodes every half value to its own bit pattern (exact values never move)', () => {
    const all = Array.from({ length: 65536 }, (_, h) => h);
    const values = Float32Array.from(all, refHalfToNumber);
    const bits = encodeHalf(values);
    const bad = all.filter((h) => (isHalfNaN(h) ? !isHalfNaN(bits[h]) : bits[h] !== h));
    expect(bad.map(hex).slice(0, 10)).toEqual([]);
  });

  it('rounds every midpoint between neighbouring halves to the even one, and nudges either way', () => {
    // Midpoints need 12 significant bits, so they are exact float32 values; so are their float32
    // neighbours, which must round to the nearer half without any tie-breaking.
    const { mids, lows } = midpoints(refHalfToNumber, 0x7c00, 65536);
    const inputs: number[] = [];
    const want: number[] = [];
    mids.forEach((m, k) => {
      const lo = lows[k];
      const even = lo % 2 === 0 ? lo : lo + 1;
      const [below, above] = f32Neighbours(m);
      for (const sign of [1, -1]) {
        const s = sign < 0 ? 0x8000 : 0;
        inputs.push(sign * m, sign * below, sign * above);
        want.push(s | even, s | lo, s | (lo + 1));
      }
    });
    expect(inputs.every((v) => Math.fround(v) === v)).toBe(true); // all exact in float32
    const got = encodeHalf(inputs);
    const bad: string[] = [];
    for (let i = 0; i < inputs.length && bad.length < 10; i++)
      if (got[i] !== want[i]) bad.push(`${inputs[i]}: ${hex(got[i])} want ${hex(want[i])}`);
    expect(bad).toEqual([]);
    expect(inputs.length).toBe(6 * 0x7c00);
  });

  it('matches the reference on 200k random float32 bit patterns', () => {
    const values = randomFloat32Bits(200_000, 12345);
    const got = encodeHalf(values);
    const bad: string[] = [];
    for (let i = 0; i < values.length && bad.length < 10; i++) {
      const v = values[i];
      const ok = Number.isNaN(v) ? isHalfNaN(got[i]) : got[i] === refFloatToHalf(v);
      if (!ok) bad.push(`${v}: ${hex(got[i])} want ${hex(refFloatToHalf(v))}`);
    }
    expect(bad).toEqual([]);
  });
});

describe('BF16 (bfloat16)', () => {
  it('decodes and encodes known bit patterns', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3f80],
      [-1, 0xbf80],
      [3.140625, 0x4049],
      [Math.fround(Math.PI), 0x4049], // 0x40490fdb: dropped half 0x0fdb < 0x8000 → down
      [2 ** -126, 0x0080],
      [2 ** -133, 0x0001],
      [3.3895313892515355e38, 0x7f7f], // largest finite bfloat16
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [0, 0x0000],
      [-0, 0x8000],
    ];
    const enc = encodeBf16(cases.map((c) => c[0]));
    cases.forEach(([value, bits], i) => expect(hex(enc[i]), `encode ${value}`).toBe(hex(bits)));
    // Decoding: every case except the rounded π is an exact bfloat16 value.
    const exact = cases.filter(([v]) => v !== Math.fround(Math.PI));
    const dec = decodeElements('BF16', bytesOfU16(exact.map((c) => c[1])), exact.length);
    expect(dec).toBeInstanceOf(Float32Array);
    exact.forEach(([value, bits], i) => expect(Object.is(dec[i], value), `${hex(bits)} → ${dec[i]}`).toBe(true));
  });

  it('rounds to nearest, ties to even, and keeps NaN a NaN', () => {
    const cases: Array<[number, number]> = [
      [1 + 2 ** -8, 0x3f80], // 0x3f808000: halfway, lower (0x3f80) is even → down
      [1 + 3 * 2 ** -8, 0x3f82], // 0x3f818000: halfway, lower 0x3f81 odd → up
      [1 + 2 ** -8 + 2 ** -23, 0x3f81], // just above halfway
      [1 + 2 ** -8 - 2 ** -23, 0x3f80], // just below
      [3.4028234663852886e38, 0x7f80], // float32 max is above bf16 max + ulp/2 → ∞
      [-3.4028234663852886e38, 0xff80],
      [1.401298464324817e-45, 0x0000], // float32 smallest subnormal: far below 2^-134 → 0
    ];
    const enc = encodeBf16(cases.map((c) => c[0]));
    cases.forEach(([value, bits], i) => expect(hex(enc[i]), `encode ${value}`).toBe(hex(bits)));
    // Every float32 NaN payload, even those whose top 7 mantissa bits are zero, must stay NaN.
    const nanBits = new Uint32Array([0x7fc00000, 0x7f800001, 0xff800001, 0x7f80ffff, 0xffffffff]);
    for (const h of encodeBf16(new Float32Array(nanBits.buffer))) expect(isBf16NaN(h), hex(h)).toBe(true);
    for (const v of decodeElements('BF16', bytesOfU16([0x7fc0, 0xffc1, 0x7f81]), 3)) expect(v).toBeNaN();
  });

  it('decodes all 65536 bit patterns and re-encodes every value to itself', () => {
    const all = Array.from({ length: 65536 }, (_, h) => h);
    const decoded = decodeElements('BF16', bytesOfU16(all), 65536);
    const badDecode = all.filter((h) => {
      const want = refBf16ToNumber(h);
      return !(Number.isNaN(want) ? Number.isNaN(decoded[h]) : Object.is(decoded[h], want));
    });
    expect(badDecode.map(hex).slice(0, 10)).toEqual([]);
    const bits = encodeBf16(Float32Array.from(all, refBf16ToNumber));
    const badEncode = all.filter((h) => (isBf16NaN(h) ? !isBf16NaN(bits[h]) : bits[h] !== h));
    expect(badEncode.map(hex).slice(0, 10)).toEqual([]);
  });

  it('rounds every midpoint to the even neighbour and nudged midpoints to the nearer one', () => {
    // bfloat16 midpoints need 9 significant bits: exact in float32, as are their float32 neighbours.
    const { mids, lows } = midpoints(refBf16ToNumber, 0x7f80, 2 ** 128);
    const inputs: number[] = [];
    const want: number[] = [];
    mids.forEach((m, k) => {
      const lo = lows[k];
      const even = lo % 2 === 0 ? lo : lo + 1;
      const [below, above] = f32Neighbours(m);
      for (const sign of [1, -1]) {
        const s = sign < 0 ? 0x8000 : 0;
        inputs.push(sign * m, sign * below, sign * above);
        want.push(s | even, s | lo, s | (lo + 1));
      }
    });
    // The last midpoint, bf16 max + ulp/2 = 2^128 − 2^119, is a finite float32 that must round to ∞.
    expect(inputs.every((v) => Math.fround(v) === v && Number.isFinite(v))).toBe(true);
    const got = encodeBf16(inputs);
    const bad: string[] = [];
    for (let i = 0; i < inputs.length && bad.length < 10; i++)
      if (got[i] !== want[i]) bad.push(`${inputs[i]}: ${hex(got[i])} want ${hex(want[i])}`);
    expect(bad).toEqual([]);
    expect(inputs.length).toBe(6 * 0x7f80);
    expect(hex(got[inputs.indexOf(2 ** 128 - 2 ** 119)])).toBe('0x7f80');
  });

  it('matches the reference on 200k random float32 bit patterns', () => {
    const values = randomFloat32Bits(200_000, 777);
    const got = encodeBf16(values);
    const bad: string[] = [];
    for (let i = 0; i < values.length && bad.length < 10; i++) {
      const v = values[i];
      const ok = Number.isNaN(v) ? isBf16NaN(got[i]) : got[i] === refFloatToBf16(v);
      if (!ok) bad.push(`${v}: ${hex(got[i])} want ${hex(refFloatToBf16(v))}`);
    }
    expect(bad).toEqual([]);
  });
});

describe('numpy cross-check (optional: needs python3 with numpy)', () => {
  const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  const haveNumpy = probe.status === 0;
  const why = 'python3 with numpy is not available on this machine; the numpy float16 cross-check is skipped';

  it('float32 → float16 and float16 → float32 agree with numpy bit for bit', (ctx) => {
    if (!haveNumpy) console.warn(why);
    ctx.skip(!haveNumpy, why);
    const dir = mkdtempSync(join(tmpdir(), 'mdm-ckpt-numpy-'));
    try {
      const { mids } = midpoints(refHalfToNumber, 0x7c00, 65536);
      const extra = [
        0,
        -0,
        1,
        65504,
        65519,
        65520,
        2 ** -24,
        2 ** -25,
        3 * 2 ** -25,
        1 + 2 ** -11,
        1 + 3 * 2 ** -11,
        Infinity,
        -Infinity,
      ];
      const random = randomFloat32Bits(50_000, 4242);
      const values = new Float32Array(mids.length + extra.length + random.length);
      values.set(mids, 0);
      values.set(extra, mids.length);
      values.set(random, mids.length + extra.length);
      writeFileSync(join(dir, 'f32.bin'), new Uint8Array(values.buffer));
      writeFileSync(join(dir, 'halves.bin'), bytesOfU16(Array.from({ length: 65536 }, (_, h) => h)));
      const script = [
        'import numpy as np, sys, warnings',
        'warnings.simplefilter("ignore")',
        'd = sys.argv[1]',
        "np.fromfile(d + '/f32.bin', dtype='<f4').astype('<f2').tofile(d + '/f16.bin')",
        "np.fromfile(d + '/halves.bin', dtype='<f2').astype('<f4').tofile(d + '/halves_f32.bin')",
      ].join('\n');
      const run = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);

      const npHalf = u16(new Uint8Array(readFileSync(join(dir, 'f16.bin'))));
      const ours = encodeHalf(values);
      expect(npHalf.length).toBe(values.length);
      const bad: string[] = [];
      for (let i = 0; i < values.length && bad.length < 10; i++) {
        const ok = Number.isNaN(values[i]) ? isHalfNaN(ours[i]) && isHalfNaN(npHalf[i]) : ours[i] === npHalf[i];
        if (!ok) bad.push(`${values[i]}: ours ${hex(ours[i])} numpy ${hex(npHalf[i])}`);
      }
      expect(bad).toEqual([]);

      const raw = readFileSync(join(dir, 'halves_f32.bin'));
      const npDecoded = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      const ourDecoded = decodeElements('F16', new Uint8Array(readFileSync(join(dir, 'halves.bin'))), 65536);
      let mismatches = 0;
      for (let h = 0; h < 65536; h++) {
        const ok = Number.isNaN(npDecoded[h]) ? Number.isNaN(ourDecoded[h]) : Object.is(npDecoded[h], ourDecoded[h]);
        if (!ok) mismatches++;
      }
      expect(mismatches).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('encodeElements / decodeElements byte layout', () => {
  it('writes little-endian bytes for every dtype', () => {
    const expectBytes = (dtype: Dtype, values: ArrayLike<number | bigint>, bytes: number[]) =>
      expect([...encodeElements(dtype, values)], dtype).toEqual(bytes);
    expectBytes('F64', [1], [0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
    expectBytes('F32', [1], [0, 0, 0x80, 0x3f]);
    expectBytes('F16', [1], [0x00, 0x3c]);
    expectBytes('BF16', [1], [0x80, 0x3f]);
    expectBytes('I64', [-2n], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expectBytes('I64', [258], [2, 1, 0, 0, 0, 0, 0, 0]);
    expectBytes('I32', [-2], [0xfe, 0xff, 0xff, 0xff]);
    expectBytes('I32', [0x01020304], [4, 3, 2, 1]);
    expectBytes('U8', [0, 127, 255], [0, 127, 255]);
    for (const dtype of Object.keys(DTYPE_BYTES) as Dtype[])
      expect(encodeElements(dtype, [0, 0, 0]).byteLength).toBe(3 * DTYPE_BYTES[dtype]);
  });

  it('truncates non-integer numbers written as I64 toward zero and accepts bigints', () => {
    const bytes = encodeElements('I64', [-3.7, 3.7, 2n ** 62n]);
    expect([...(decodeElements('I64', bytes, 3) as BigInt64Array)]).toEqual([-3n, 3n, 2n ** 62n]);
  });

  it('decodes from unaligned views and ignores bytes past `count`', () => {
    const values = new Float64Array([1.5, -2.25, Math.PI]);
    for (const dtype of ['F64', 'F32', 'I64', 'I32', 'F16', 'BF16', 'U8'] as Dtype[]) {
      const encoded = encodeElements(
        dtype,
        dtype === 'I64' ? [1n, -2n, 3n] : dtype === 'I32' || dtype === 'U8' ? [1, 2, 3] : values,
      );
      // Place the bytes at an odd offset inside a larger buffer, with junk after them.
      const host = new Uint8Array(encoded.byteLength + 7).fill(0xaa);
      host.set(encoded, 3);
      const view = host.subarray(3, 3 + encoded.byteLength + 4);
      const decoded = decodeElements(dtype, view, 3);
      expect(decoded.length, dtype).toBe(3);
      const direct = decodeElements(dtype, encoded, 3);
      expect(decoded, dtype).toEqual(direct);
    }
  });

  it('returns the documented typed array for each dtype', () => {
    const kinds: Record<Dtype, unknown> = {
      F64: Float64Array,
      F32: Float32Array,
      F16: Float32Array,
      BF16: Float32Array,
      I64: BigInt64Array,
      I32: Int32Array,
      U8: Uint8Array,
    };
    for (const dtype of Object.keys(kinds) as Dtype[]) {
      const data = decodeElements(dtype, new Uint8Array(2 * DTYPE_BYTES[dtype]), 2);
      expect(data, dtype).toBeInstanceOf(kinds[dtype] as new () => unknown);
      expect(data.length).toBe(2);
    }
  });

  it('decodes a copy that does not alias the input bytes', () => {
    const bytes = encodeElements('F32', [1, 2]);
    const decoded = decodeElements('F32', bytes, 2);
    bytes.fill(0);
    expect([...decoded]).toEqual([1, 2]);
    const u8 = new Uint8Array([5, 6]);
    const u8Decoded = decodeElements('U8', u8, 2);
    u8[0] = 0;
    expect([...u8Decoded]).toEqual([5, 6]);
  });
});

describe('toNumbers / toFloat32', () => {
  it('converts int64 and float64 data', () => {
    expect(toNumbers(new BigInt64Array([-5n, 2n ** 52n]))).toEqual([-5, 2 ** 52]);
    expect(toNumbers(new Float64Array([0.1, -3]))).toEqual([0.1, -3]);
    const f32 = toFloat32(new Float64Array([0.1, 2 ** 30 + 1]));
    expect(f32).toBeInstanceOf(Float32Array);
    expect([...f32]).toEqual([Math.fround(0.1), Math.fround(2 ** 30 + 1)]);
    expect([...toFloat32(new BigInt64Array([7n, -1n]))]).toEqual([7, -1]);
    expect([...toFloat32(new Uint8Array([255]))]).toEqual([255]);
  });

  it('returns float32 data as it is, without copying', () => {
    const data = new Float32Array([1, 2, 3]);
    expect(toFloat32(data)).toBe(data);
  });
});
