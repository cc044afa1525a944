let table: Uint32Array | undefined;

/**
 * CRC-32 (ISO 3309, as zip and zlib compute it) by table lookup, continuing from `value` for data
 * that comes in pieces. Portable (no Node import); Node packages use node:zlib's `crc32` where the
 * runtime has it (Node ≥ 20.15, ~10× faster) and fall back to this one.
 */
export function crc32Portable(bytes: Uint8Array, value = 0): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
