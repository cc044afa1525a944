import { closeSync, ftruncateSync, fstatSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from './safetensors.js';

/**
 * A file larger than 2 GiB without using 2 GiB of disk or memory: a sparse file whose header
 * declares a huge U8 tensor 'pad' (never read) followed by small tensors near the end. Only the
 * header and the small tensors are written, with positional writes; the rest is a hole.
 */
const GiB = 2 ** 30;
const FILE_SIZE = Math.round(2.5 * GiB);
const PAD_BYTES = Math.round((2.3 * GiB) / 8) * 8; // multiple of 8 so 'tail' (F32) stays aligned
const TAIL = new Float32Array([1.5, -2.25, 3.125, 65504, -0, 1e-30]);
const END = new Int32Array([-(2 ** 31), 7, 2 ** 31 - 1]);

const path = join(tmpdir(), `mdm-ckpt-sparse-${process.pid}-${Date.now()}.safetensors`);
afterAll(() => {
  rmSync(path, { force: true });
});

function buildHeader(): { json: Uint8Array; dataStart: number; tailOffset: number; endOffset: number } {
  const tailOffset = PAD_BYTES;
  const tailEnd = tailOffset + TAIL.byteLength;
  // Put 'end' in the very last bytes of the file: compute the data start first (header size
  // does not depend on these numbers' values beyond a few digits, so iterate to a fixed point).
  let dataStart = 0;
  let text = '';
  for (let i = 0; i < 4; i++) {
    const endOffset = FILE_SIZE - dataStart - END.byteLength;
    const header = {
      __metadata__: { purpose: 'sparse > 2 GiB test' },
      pad: { dtype: 'U8', shape: [PAD_BYTES], data_offsets: [0, PAD_BYTES] },
      tail: { dtype: 'F32', shape: [2, 3], data_offsets: [tailOffset, tailEnd] },
      end: { dtype: 'I32', shape: [3], data_offsets: [endOffset, endOffset + END.byteLength] },
    };
    text = JSON.stringify(header);
    text += ' '.repeat((8 - ((8 + text.length) % 8)) % 8);
    dataStart = 8 + text.length;
  }
  const json = new TextEncoder().encode(text);
  return { json, dataStart, tailOffset, endOffset: FILE_SIZE - dataStart - END.byteLength };
}

describe('files beyond 2 GiB (sparse)', () => {
  it('reads tensors that start past 2 GiB with positional reads', (ctx) => {
    const { json, dataStart, tailOffset, endOffset } = buildHeader();
    const fd = openSync(path, 'w');
    let sparseRefused: string | undefined;
    try {
      try {
        ftruncateSync(fd, FILE_SIZE);
      } catch (error) {
        sparseRefused =
          `the filesystem under ${tmpdir()} refused a ${FILE_SIZE}-byte sparse file ` + `(${(error as Error).message})`;
      }
      if (!sparseRefused) {
        const prefix = Buffer.alloc(8);
        prefix.writeBigUInt64LE(BigInt(json.byteLength), 0);
        writeSync(fd, prefix, 0, 8, 0);
        writeSync(fd, json, 0, json.byteLength, 8);
        writeSync(fd, new Uint8Array(TAIL.buffer), 0, TAIL.byteLength, dataStart + tailOffset);
        writeSync(fd, new Uint8Array(END.buffer), 0, END.byteLength, dataStart + endOffset);
        const st = fstatSync(fd);
        expect(st.size).toBe(FILE_SIZE);
        // A filesystem without holes would have allocated everything; note it (the test still
        // holds, it just used the disk). st.blocks counts 512-byte units.
        if (st.blocks * 512 > 64 * 2 ** 20)
          console.warn(`sparse test file is not sparse here: ${st.blocks * 512} bytes allocated`);
      }
    } finally {
      closeSync(fd);
    }
    if (sparseRefused) {
      console.warn(sparseRefused);
      ctx.skip(sparseRefused);
    }

    const file = SafetensorsFile.open(path);
    try {
      expect(file.names.sort()).toEqual(['end', 'pad', 'tail']);
      expect(file.metadata).toEqual({ purpose: 'sparse > 2 GiB test' });
      expect(file.header.dataStart).toBe(dataStart);
      expect(dataStart % 8).toBe(0);

      const pad = file.info('pad');
      expect(pad).toEqual({ dtype: 'U8', shape: [PAD_BYTES], begin: dataStart, end: dataStart + PAD_BYTES });
      const tailInfo = file.info('tail');
      expect(tailInfo.begin).toBe(dataStart + PAD_BYTES);
      expect(tailInfo.begin).toBeGreaterThan(2 ** 31); // beyond any 32-bit signed offset
      expect(tailInfo.end).toBe(tailInfo.begin + 24);
      const endInfo = file.info('end');
      expect(endInfo.end).toBe(FILE_SIZE);
      expect(endInfo.begin).toBeGreaterThan(2 ** 31);

      const tail = file.read('tail');
      expect(tail.dtype).toBe('F32');
      expect(tail.shape).toEqual([2, 3]);
      expect(tail.data).toBeInstanceOf(Float32Array);
      // Exact: the bytes were written verbatim, no conversion happens.
      expect([...tail.data].map((v) => (Object.is(v, -0) ? '-0' : v))).toEqual([
        1.5,
        -2.25,
        3.125,
        65504,
        '-0',
        Math.fround(1e-30),
      ]);

      const end = file.read('end');
      expect(end.data).toBeInstanceOf(Int32Array);
      expect([...end.data]).toEqual([-(2 ** 31), 7, 2 ** 31 - 1]);
    } finally {
      file.close();
    }
  });
});
