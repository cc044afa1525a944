import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, MdmError } from '@matryoshka-ts/core';
import { afterAll, describe, expect, it } from 'vitest';
import { type NpyArray, decodeNpy, encodeNpy } from './npy.js';
import { decodeNpz, encodeNpz, readFidStats, readNpz, writeFidStats, writeNpz } from './npz.js';
import { gaussian, pythonWith, runPython } from './test-helpers.js';
import { crc32Portable } from '@matryoshka-ts/core';
import { crc32, readZip, writeZip } from './zip.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-metrics-npz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function random(seed: number, n: number): Float64Array {
  const g = gaussian(seed);
  return Float64Array.from({ length: n }, () => g());
}

/** Arrays of every rank the tests use: scalar, empty, 1-D, 2-D, 3-D, in both dtypes. */
function sampleArrays(): Map<string, NpyArray> {
  return new Map<string, NpyArray>([
    ['scalar', { dtype: 'float64', shape: [], data: Float64Array.of(Math.PI) }],
    ['empty', { dtype: 'float32', shape: [0, 3], data: new Float32Array(0) }],
    ['vector', { dtype: 'float64', shape: [7], data: random(1, 7) }],
    ['matrix32', { dtype: 'float32', shape: [5, 3], data: Float32Array.from(random(2, 15)) }],
    ['cube', { dtype: 'float64', shape: [2, 3, 4], data: random(3, 24) }],
    [
      'special',
      {
        dtype: 'float64',
        shape: [6],
        data: Float64Array.of(0, -0, Infinity, -Infinity, Number.MIN_VALUE, Number.MAX_VALUE),
      },
    ],
  ]);
}

function expectSameArrays(got: Map<string, NpyArray>, want: Map<string, NpyArray>): void {
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [key, w] of want) {
    const g = got.get(key) as NpyArray;
    expect(g.dtype, key).toBe(w.dtype);
    expect(g.shape, key).toEqual(w.shape);
    expect(g.data.constructor, key).toBe(w.data.constructor);
    expect(
      Array.from(g.data).map((v) => (Object.is(v, -0) ? '-0' : v)),
      key,
    ).toEqual(Array.from(w.data).map((v) => (Object.is(v, -0) ? '-0' : v)));
  }
}

/** The header text of an .npy encoding (for crafting files numpy would write). */
function npyWithHeader(dict: string, body: Uint8Array): Uint8Array {
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const out = new Uint8Array(total + body.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, total - 10, true);
  out.fill(0x20, 10, total);
  for (let i = 0; i < dict.length; i++) out[10 + i] = dict.charCodeAt(i);
  out[total - 1] = 0x0a;
  out.set(body, total);
  return out;
}

describe('CRC-32', () => {
  it('has the standard check value and the table version agrees with zlib’s', () => {
    const check = new TextEncoder().encode('123456789');
    expect(crc32(check)).toBe(0xcbf43926);
    expect(crc32Portable(check)).toBe(0xcbf43926);
    const bytes = new Uint8Array(random(4, 1000).buffer);
    expect(crc32Portable(bytes)).toBe(crc32(bytes));
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});

describe('.npy', () => {
  it('round-trips every rank and both dtypes, with 64-byte aligned data', () => {
    for (const [key, a] of sampleArrays()) {
      const bytes = encodeNpy(a);
      const headerLength = new DataView(bytes.buffer).getUint16(8, true);
      expect((10 + headerLength) % 64, key).toBe(0);
      expectSameArrays(new Map([[key, decodeNpy(bytes)]]), new Map([[key, a]]));
    }
    // number[] data is float64; the shape defaults to 1-D; a dtype converts.
    expect(decodeNpy(encodeNpy({ data: [1, 2, 3] }))).toEqual({
      dtype: 'float64',
      shape: [3],
      data: Float64Array.of(1, 2, 3),
    });
    expect(decodeNpy(encodeNpy({ dtype: 'float32', shape: [1, 2], data: [0.5, 2] }))).toEqual({
      dtype: 'float32',
      shape: [1, 2],
      data: Float32Array.of(0.5, 2),
    });
  });

  it('reads headers as numpy writes them (spare spaces, old "L" suffixes, version 2.0)', () => {
    const body = new Uint8Array(Float64Array.of(1, 2, 3, 4).buffer);
    const a = decodeNpy(
      npyWithHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }                    ", body),
    );
    expect(a.shape).toEqual([2, 2]);
    expect(Array.from(a.data)).toEqual([1, 2, 3, 4]);
    expect(decodeNpy(npyWithHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (4L,), }", body)).shape).toEqual([
      4,
    ]);
    // Version 2.0: 4-byte header length.
    const v1 = encodeNpy({ shape: [4], data: Float64Array.of(1, 2, 3, 4) });
    const headerLength = new DataView(v1.buffer).getUint16(8, true);
    const v2 = new Uint8Array(v1.byteLength + 2);
    v2.set(v1.subarray(0, 8));
    v2[6] = 2;
    new DataView(v2.buffer).setUint32(8, headerLength, true);
    v2.set(v1.subarray(10), 12);
    expect(Array.from(decodeNpy(v2).data)).toEqual([1, 2, 3, 4]);
  });

  it('refuses other dtypes, Fortran order, big-endian data and damaged files, saying why', () => {
    const eight = new Uint8Array(8);
    expect(() => decodeNpy(npyWithHeader("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", eight))).toThrow(
      /unsupported .npy dtype '<i8': only float64 \('<f8'\) and float32 \('<f4'\)/,
    );
    expect(() => decodeNpy(npyWithHeader("{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }", eight))).toThrow(
      /big-endian/,
    );
    expect(() =>
      decodeNpy(npyWithHeader("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }", eight)),
    ).toThrow(/structured arrays/);
    expect(() => decodeNpy(npyWithHeader("{'descr': '<f8', 'fortran_order': True, 'shape': (1,), }", eight))).toThrow(
      /fortran_order is True/,
    );
    expect(() => decodeNpy(npyWithHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", eight))).toThrow(
      /needs 16 bytes, the file has 8/,
    );
    expect(() => decodeNpy(npyWithHeader("{'descr': '<f8', 'shape': (1,), }", eight))).toThrow(/no 'fortran_order'/);
    expect(() => decodeNpy(npyWithHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), ", eight))).toThrow(
      /invalid .npy header/,
    );
    expect(() => decodeNpy(new Uint8Array(20))).toThrow(/not a .npy file/);
    expect(() => encodeNpy({ shape: [2, 2], data: [1, 2, 3] })).toThrow(/holds 4 values, the data has 3/);
  });
});

describe('.npz', () => {
  it('round-trips through our writer and reader, STORED and DEFLATED', () => {
    const arrays = sampleArrays();
    expectSameArrays(decodeNpz(encodeNpz(arrays)), arrays);
    const members = [...arrays].map(([k, a]) => ({ name: `${k}.npy`, data: encodeNpy(a) }));
    expectSameArrays(decodeNpz(writeZip(members, { deflate: true })), arrays);
    // Deterministic bytes (fixed timestamps).
    expect(encodeNpz(arrays)).toEqual(encodeNpz(arrays));
  });

  it('writes atomically (no temporary file left behind, an existing file replaced)', () => {
    const path = join(dir, 'atomic.npz');
    writeNpz(path, { a: { data: [1, 2] } });
    writeNpz(path, { b: { data: [3] } });
    expect([...readNpz(path).keys()]).toEqual(['b']);
    expect(readdirSync(dir).filter((f) => f.startsWith('atomic.npz.tmp'))).toEqual([]);
  });

  it('detects corruption and non-zip input', () => {
    const bytes = encodeNpz({ x: { data: random(5, 100) } });
    const bad = bytes.slice();
    bad[200] ^= 0xff; // inside the data of x.npy
    expect(() => decodeNpz(bad)).toThrow(/fails its CRC-32 check/);
    expect(() => decodeNpz(new Uint8Array(100))).toThrow(/not a zip/);
    const path = join(dir, 'garbage.npz');
    writeFileSync(path, 'hello');
    expect(() => readNpz(path)).toThrow(/garbage\.npz: not a zip/);
  });

  it('throws file errors as DataError (DATA_INVALID), messages unchanged; argument errors stay plain', () => {
    const thrown = (f: () => unknown): unknown => {
      try {
        f();
      } catch (error) {
        return error;
      }
      throw new Error('expected a throw');
    };
    const noMagic = 'not a .npy file (the magic string \\x93NUMPY is missing)';
    const notNpy = thrown(() => decodeNpy(new Uint8Array(20)));
    expect(notNpy).toBeInstanceOf(DataError);
    expect(notNpy).toMatchObject({ name: 'DataError', code: 'DATA_INVALID', message: noMagic });
    const badMember = thrown(() => decodeNpz(writeZip([{ name: 'x.npy', data: new Uint8Array(20) }])));
    expect(badMember).toBeInstanceOf(DataError);
    expect(badMember).toMatchObject({ code: 'DATA_INVALID', message: `array 'x': ${noMagic}` });
    expect((badMember as Error).cause).toBeInstanceOf(DataError);
    const noEnd = 'not a zip/.npz file (no end-of-central-directory record)';
    expect(thrown(() => decodeNpz(new Uint8Array(100)))).toMatchObject({ code: 'DATA_INVALID', message: noEnd });
    const path = join(dir, 'garbage2.npz');
    writeFileSync(path, 'hello');
    const withPath = thrown(() => readNpz(path));
    expect(withPath).toBeInstanceOf(DataError);
    expect(withPath).toMatchObject({ code: 'DATA_INVALID', message: `${path}: ${noEnd}` });
    expect((withPath as Error).cause).toMatchObject({ code: 'DATA_INVALID', message: noEnd });
    const keys = join(dir, 'keys2.npz');
    writeNpz(keys, { m: { data: [1] } });
    const lack = thrown(() => readFidStats(keys));
    expect(lack).toBeInstanceOf(DataError);
    expect(lack).toMatchObject({
      code: 'DATA_INVALID',
      message: `${keys} lack 'mu' and 'sigma' (keys found: 'm'); FID statistics files hold 'mu' and 'sigma'`,
    });
    const badShape = thrown(() => encodeNpy({ shape: [2, 2], data: [1, 2, 3] }));
    expect(badShape).toBeInstanceOf(RangeError);
    expect(badShape).not.toBeInstanceOf(MdmError);
  });

  it('FID statistics: writes float64 mu (d) and sigma (d, d), checks shapes and keys when reading', () => {
    const path = join(dir, 'stats.npz');
    const mu = random(6, 3);
    const sigma = Float64Array.of(2, 0.5, 0, 0.5, 1, 0, 0, 0, 3);
    writeFidStats(path, { mu, sigma });
    const back = readFidStats(path);
    expect(back.dim).toBe(3);
    expect(back.mu).toEqual(mu);
    expect(back.sigma).toEqual(sigma);
    const arrays = readNpz(path);
    expect(arrays.get('sigma')?.shape).toEqual([3, 3]);

    expect(() => writeFidStats(path, { mu, sigma: new Float64Array(4) })).toThrow(
      /sigma has 4 values, expected 3×3 = 9/,
    );
    const wrongKeys = join(dir, 'keys.npz');
    writeNpz(wrongKeys, { m: { data: [1] }, s: { shape: [1, 1], data: [1] } });
    expect(() => readFidStats(wrongKeys)).toThrow(/lack 'mu' and 'sigma' \(keys found: 'm', 's'\)/);
    const wrongShape = join(dir, 'shape.npz');
    writeNpz(wrongShape, { mu: { data: [1, 2] }, sigma: { shape: [2, 3], data: new Float64Array(6) } });
    expect(() => readFidStats(wrongShape)).toThrow(
      /'sigma' must have shape \(2, 2\) to match 'mu' of shape \(2,\), got \(2, 3\)/,
    );
    // float32 statistics (pytorch-fid's mu is float32 when its activations are) read as float64.
    const f32 = join(dir, 'f32.npz');
    writeNpz(f32, {
      mu: { dtype: 'float32', data: [0.1, 0.2] },
      sigma: { dtype: 'float32', shape: [2, 2], data: [1, 0, 0, 1] },
    });
    expect(readFidStats(f32).mu).toEqual(Float64Array.of(Math.fround(0.1), Math.fround(0.2)));
  });

  it('readZip lists members in order', () => {
    const zip = writeZip([
      { name: 'a.txt', data: new TextEncoder().encode('alpha') },
      { name: 'dir/b.txt', data: new Uint8Array(0) },
    ]);
    expect(readZip(zip).map((m) => [m.name, m.data.byteLength])).toEqual([
      ['a.txt', 5],
      ['dir/b.txt', 0],
    ]);
  });
});

describe('damaged and hostile files: a one-line DataError naming the file and the array', () => {
  /** What `f` throws, checked to be a one-line DataError (DATA_INVALID). */
  const refusal = (f: () => unknown): string => {
    try {
      f();
    } catch (error) {
      expect(error).toBeInstanceOf(DataError);
      expect(error).toMatchObject({ code: 'DATA_INVALID' });
      expect((error as Error).message).not.toMatch(/\n/);
      return (error as Error).message;
    }
    throw new Error('expected a throw');
  };
  const at = (name: string, bytes: Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };

  /** One deflated member x.npy whose zip entry declares `declared` bytes (central directory and local header). */
  const deflatedClaiming = (npy: Uint8Array, declared: number): Uint8Array => {
    const zip = writeZip([{ name: 'x.npy', data: npy }], { deflate: true });
    const view = new DataView(zip.buffer);
    view.setUint32(22, declared, true);
    view.setUint32(view.getUint32(zip.byteLength - 6, true) + 24, declared, true);
    return zip;
  };

  it('zip bombs: inflation stops at the declared size and at what the .npy header implies, fast', () => {
    // 4 MiB: the .npy of three float64 values (152 bytes), then zeros. Deflated to ~4 KiB.
    const bomb = new Uint8Array(4 << 20);
    bomb.set(encodeNpy({ data: [1, 2, 3] }));
    const cases: [number, RegExp][] = [
      [152, /x\.npy' inflates to more than the 152 bytes it declares/],
      [bomb.byteLength, /array 'x': its .npy header implies 152 bytes, its zip entry declares 4194304/],
      [100 << 20, /x\.npy' declares 104857600 bytes, more than its \d+ deflated bytes can hold/],
      [2 ** 32 - 2, /x\.npy' declares 4294967294 bytes, more than the 2 GiB read at most/],
    ];
    for (const [declared, message] of cases) {
      const path = at(`bomb-${declared}.npz`, deflatedClaiming(bomb, declared));
      const start = performance.now();
      expect(refusal(() => readNpz(path))).toMatch(message);
      expect(refusal(() => readNpz(path)).startsWith(`${path}: `)).toBe(true);
      expect(performance.now() - start).toBeLessThan(1000);
    }
    // The same member, honestly declared and with a header to match, reads.
    const zeros = encodeNpy({ data: new Float64Array((bomb.byteLength - 128) / 8) });
    expect(readNpz(at('zeros.npz', deflatedClaiming(zeros, zeros.byteLength))).get('x')?.shape).toEqual([524272]);
  });

  it('a changed byte in array data fails the CRC-32 check, naming file and member', () => {
    const path = join(dir, 'crc.npz');
    writeFidStats(path, { mu: [0, 0], sigma: [1, 0, 0, 1] });
    const bytes = readFileSync(path);
    bytes[bytes.byteLength - 22 - (46 + 6) - (46 + 9) - 3] ^= 0x10; // inside sigma's last float64
    writeFileSync(path, bytes);
    expect(refusal(() => readNpz(path))).toBe(
      `${path}: array 'sigma': zip member 'sigma.npy' fails its CRC-32 check (the file is corrupt)`,
    );
    expect(refusal(() => readFidStats(path))).toMatch(/sigma\.npy' fails its CRC-32 check/);
  });

  it('refuses damaged zip structure and headers instead of reading them differently', () => {
    const npy = encodeNpy({ data: [1] });
    expect(
      refusal(() =>
        readZip(
          writeZip([
            { name: 'a.npy', data: npy },
            { name: 'a.npy', data: npy },
          ]),
        ),
      ),
    ).toBe("zip member 'a.npy' occurs twice");
    expect(
      refusal(() =>
        decodeNpz(
          writeZip([
            { name: 'a.npy', data: npy },
            { name: 'a', data: npy },
          ]),
        ),
      ),
    ).toBe("array 'a': two members hold it");
    // The count of entries in the end record lowered: one array would silently go missing.
    const two = encodeNpz({ a: { data: [1] }, b: { data: [2] } });
    two[two.byteLength - 12] = two[two.byteLength - 14] = 1;
    expect(refusal(() => decodeNpz(two))).toMatch(/1 entries do not fill the central directory/);
    // A damaged name in the central directory no longer matches the local header's copy.
    const renamed = encodeNpz({ a: { data: [1] } });
    renamed[renamed.byteLength - 22 - 5] = 0x62; // the central name 'a.npy' (before the end record) → 'b.npy'
    expect(refusal(() => decodeNpz(renamed))).toBe("zip member 'b.npy': its local header holds another name");
    // Nesting that would exhaust a recursive parser's stack; control characters in what is quoted.
    const deep = `{'descr': '<f8', 'fortran_order': False, 'shape': ${'('.repeat(60000)}1,), }`;
    expect(refusal(() => decodeNpy(npyWithHeader(deep, new Uint8Array(8))))).toMatch(/nesting deeper than 16/);
    const ctrl = "{'descr': '<f8',\n\x00 'fortran_order': False, 'shape': (1,), }x";
    expect(refusal(() => decodeNpy(npyWithHeader(ctrl, new Uint8Array(8))))).toContain('\\u000a\\u0000');
    expect(refusal(() => readNpz(join(dir, 'nope.npz')))).toMatch(/nope\.npz: cannot read it \(ENOENT/);
  });

  it('FID statistics: non-finite values and a sigma that is no covariance, naming the file and the array', () => {
    const write = (name: string, mu: number[], sigma: number[]) => {
      const path = join(dir, name);
      writeNpz(path, { mu: { data: mu }, sigma: { shape: [2, 2], data: sigma } });
      return path;
    };
    const nan = write('nan.npz', [0, Number.NaN], [1, 0, 0, 1]);
    expect(refusal(() => readFidStats(nan))).toBe(`${nan}: 'mu' has a non-finite value (NaN) at [1]`);
    const inf = write('inf.npz', [0, 0], [1, Number.POSITIVE_INFINITY, 0, 1]);
    expect(refusal(() => readFidStats(inf))).toBe(`${inf}: 'sigma' has a non-finite value (Infinity) at [0, 1]`);
    const negated = write('negated.npz', [0, 0], [-2, -0.5, -0.5, -1]);
    expect(refusal(() => readFidStats(negated))).toMatch(
      /negated\.npz: 'sigma' is not positive semi-definite: its smallest eigenvalue is -2\.207, below -0\.000003 /,
    );
    const indefinite = write('indefinite.npz', [0, 0], [1, 2, 2, 1]);
    expect(refusal(() => readFidStats(indefinite))).toMatch(/'sigma' is not positive semi-definite: .* -1(\.0+\d*)?, /);
    const skew = write('skew.npz', [0, 0], [1, 0.5, 0, 1]);
    expect(refusal(() => readFidStats(skew))).toMatch(/skew\.npz: 'sigma' is not symmetric: \|Σ − Σᵀ\| reaches 0\.5/);
  });
});

const py = pythonWith(['numpy']);
if (!py.ok) console.warn(py.why);

describe.skipIf(!py.ok)('.npz interchange with numpy (needs python3 + numpy)', () => {
  /** Each array's raw little-endian bytes, as Python wrote them with tofile, keyed like the npz. */
  const rawOf = (name: string) => readFileSync(join(dir, name));

  it('reads what np.savez and np.savez_compressed write (ZIP64 local headers, deflate), bit for bit', () => {
    runPython(
      [
        'import numpy as np, sys, json',
        'd = sys.argv[1]',
        'rng = np.random.default_rng(0)',
        "arrays = {'mu': rng.standard_normal(300).astype('<f4'), 'sigma': np.cov(rng.standard_normal((300, 400))), " +
          "'scalar': np.float64(2.5), 'empty': np.zeros((0, 4)), 'cube': rng.standard_normal((2, 3, 5)).astype('<f4')}",
        "np.savez(f'{d}/np.npz', **arrays)",
        "np.savez_compressed(f'{d}/np_c.npz', **arrays)",
        "for k, v in arrays.items(): np.asarray(v).tofile(f'{d}/raw_{k}.bin')",
        'print(json.dumps({k: [str(np.asarray(v).dtype), list(np.shape(v))] for k, v in arrays.items()}))',
      ].join('\n'),
      [dir],
    );
    const meta = JSON.parse(
      runPython(
        'import json, numpy as np, sys\nf = np.load(sys.argv[1])\n' +
          'print(json.dumps({k: [str(f[k].dtype), list(f[k].shape)] for k in f.files}))',
        [join(dir, 'np.npz')],
      ),
    );
    for (const file of ['np.npz', 'np_c.npz']) {
      const arrays = readNpz(join(dir, file));
      expect([...arrays.keys()].sort()).toEqual(Object.keys(meta).sort());
      for (const [key, [dtype, shape]] of Object.entries(meta) as [string, [string, number[]]][]) {
        const a = arrays.get(key) as NpyArray;
        expect(a.dtype, `${file}:${key}`).toBe(dtype);
        expect(a.shape, `${file}:${key}`).toEqual(shape);
        const same = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(rawOf(`raw_${key}.bin`));
        expect(same, `${file}:${key}: the values differ from numpy's`).toBe(true);
      }
    }
    // pytorch-fid's own layout: mu float32, sigma float64.
    const stats = readFidStats(join(dir, 'np_c.npz'));
    expect(stats.dim).toBe(300);
    const rawMu = rawOf('raw_mu.bin');
    const mu32 = new Float32Array(rawMu.buffer.slice(rawMu.byteOffset, rawMu.byteOffset + rawMu.byteLength));
    expect(Buffer.from(stats.mu.buffer).equals(Buffer.from(Float64Array.from(mu32).buffer))).toBe(true);
  });

  it('reads a ZIP64 central directory (65 536 members, past the 16-bit count)', () => {
    const path = join(dir, 'many.zip');
    runPython(
      [
        'import sys, zipfile',
        "with zipfile.ZipFile(sys.argv[1], 'w') as z:",
        '    for i in range(65536): z.writestr(f"m{i}", bytes([i % 256]))',
      ].join('\n'),
      [path],
    );
    const members = readZip(new Uint8Array(readFileSync(path)));
    expect(members.length).toBe(65536);
    expect(members[65535].name).toBe('m65535');
    expect(members[65535].data).toEqual(Uint8Array.of(65535 % 256));
  });

  it('numpy reads what we write (np.load: dtypes, shapes, values)', () => {
    const arrays = sampleArrays();
    writeNpz(join(dir, 'ours.npz'), arrays);
    writeFileSync(
      join(dir, 'ours_deflated.npz'),
      writeZip(
        [...arrays].map(([k, a]) => ({ name: `${k}.npy`, data: encodeNpy(a) })),
        { deflate: true },
      ),
    );
    const out = runPython(
      [
        'import numpy as np, sys, json',
        'res = {}',
        'for path in sys.argv[1:]:',
        '    f = np.load(path)',
        '    res[path] = {k: [str(f[k].dtype), list(f[k].shape), ' +
          "f[k].astype('<f8').ravel().tobytes().hex()] for k in f.files}",
        'print(json.dumps(res))',
      ].join('\n'),
      [join(dir, 'ours.npz'), join(dir, 'ours_deflated.npz')],
    );
    for (const [, seen] of Object.entries(
      JSON.parse(out) as Record<string, Record<string, [string, number[], string]>>,
    )) {
      expect(Object.keys(seen)).toEqual([...arrays.keys()]);
      for (const [key, a] of arrays) {
        const [dtype, shape, hex] = seen[key];
        expect(dtype, key).toBe(a.dtype);
        expect(shape, key).toEqual(a.shape);
        const f64 = Float64Array.from(a.data);
        expect(hex, key).toBe(Buffer.from(f64.buffer).toString('hex'));
      }
    }
    expect(existsSync(join(dir, 'ours.npz'))).toBe(true);
  });
});
