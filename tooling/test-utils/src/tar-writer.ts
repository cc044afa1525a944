/**
 * One member for `tar()`: a regular file unless `type` says otherwise ('5' directory, 'L' GNU long name, 'x' pax
 * header, '2' symlink …).
 */
export interface TarWriterMember {
  name: string;
  data?: Uint8Array | string;
  type?: string;
  /** The POSIX ustar prefix field (a directory part kept out of `name`). */
  prefix?: string;
}

/**
 * A minimal POSIX ustar writer (tests only): enough to exercise a reader's header handling —
 * checksums, ustar prefixes, GNU long names and pax headers given as explicit members — and to cut
 * or garble archives at known offsets. Ends with the two zero blocks tar writes.
 */
export function tar(members: TarWriterMember[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const m of members) {
    const data = typeof m.data === 'string' ? new TextEncoder().encode(m.data) : (m.data ?? new Uint8Array());
    const header = new Uint8Array(512);
    const put = (text: string, offset: number, length: number) =>
      header.set(new TextEncoder().encode(text).subarray(0, length), offset);
    put(m.name, 0, 100);
    put('0000644\0', 100, 8);
    put(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 12);
    put('00000000000\0', 136, 12);
    put(m.type ?? '0', 156, 1);
    put('ustar\0' + '00', 257, 8);
    put(m.prefix ?? '', 345, 155);
    header.fill(0x20, 148, 156);
    const sum = header.reduce((a, b) => a + b, 0);
    put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    blocks.push(header, data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  return Buffer.concat(blocks);
}

/** A pax extended header record; its length is in bytes and counts its own digits. */
export function paxRecord(key: string, value: string): string {
  const bytes = new TextEncoder().encode(` ${key}=${value}\n`).length;
  let length = bytes + 1;
  while (String(length).length + bytes !== length) length++;
  return `${length} ${key}=${value}\n`;
}
