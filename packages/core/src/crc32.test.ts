import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32Portable } from './crc32.js';

describe('crc32Portable', () => {
  it("gives the standard check value and zlib's results, whole or in pieces", () => {
    expect(crc32Portable(new TextEncoder().encode('123456789'))).toBe(0xcbf43926); // the CRC-32 check value
    expect(crc32Portable(new Uint8Array(0))).toBe(0);
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) % 256);
    const whole = crc32Portable(bytes);
    expect(crc32Portable(bytes.subarray(300), crc32Portable(bytes.subarray(0, 300)))).toBe(whole);
    // node:zlib's crc32 exists from Node 20.15: an independent implementation where present.
    const native = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
    if (native) expect(whole).toBe(native(bytes) >>> 0);
  });
});
