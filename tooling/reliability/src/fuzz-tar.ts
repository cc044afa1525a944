// Fuzz family, tar: a seed archive, the public readers and the verdicts the format allows.
import { type SkipCounts, readRange, scanTar } from '@matryoshka-ts/data';
import type { Trial } from './shared.js';
import type { Field, Mutated, Reader, Seed } from './fuzz-types.js';

interface TarEntry {
  name: string;
  type?: string;
  data?: string | Uint8Array;
  prefix?: string;
}

/** A ustar archive (with a GNU long name and a pax path record), ended by two zero blocks. */
export function tarSeeds(): Seed[] {
  const longName = `shard-00000/${'a-long-directory-name/'.repeat(6)}0002.jpg`;
  const image = new Uint8Array(700).map((_, i) => (i * 37) & 0xff);
  const entries: TarEntry[] = [
    { name: 'data/', type: '5' },
    { name: 'data/0001.jpg', data: image },
    { name: 'data/0001.txt', data: 'a red apple on a table' },
    { name: '././@LongLink', type: 'L', data: `${longName}\0` },
    { name: longName.slice(0, 100), data: 'long-named member' },
    { name: 'PaxHeader/0003', type: 'x', data: paxRecord('path', 'päx/0003.json') },
    { name: 'ignored-name', data: '{"caption":"pax"}' },
    { name: '0004.cls', prefix: 'deep/prefix', data: '7' },
    { name: 'empty.txt', data: '' },
  ];
  const blocks: Uint8Array[] = [];
  const fields: Field[] = [];
  let offset = 0;
  for (const e of entries) {
    const data = typeof e.data === 'string' ? new TextEncoder().encode(e.data) : (e.data ?? new Uint8Array(0));
    const header = new Uint8Array(512);
    const put = (at: number, text: string) => header.set(Buffer.from(text, 'utf8'), at);
    put(0, e.name);
    put(100, '0000644\0');
    put(108, '0000000\0');
    put(116, '0000000\0');
    put(124, `${data.length.toString(8).padStart(11, '0')}\0`);
    put(136, '00000000000\0');
    header[156] = (e.type ?? '0').charCodeAt(0);
    put(257, 'ustar\0');
    put(263, '00');
    if (e.prefix) put(345, e.prefix);
    writeTarChecksum(header);
    fields.push({ at: offset + 124, width: 12, kind: 'octal', what: `size field of '${e.name}'` });
    if (e.type === 'x') fields.push({ at: offset + 512, width: 2, kind: 'digits', what: 'pax record length' });
    blocks.push(header, data, new Uint8Array((512 - (data.length % 512)) % 512));
    offset += 512 + Math.ceil(data.length / 512) * 512;
  }
  blocks.push(new Uint8Array(1024));
  const bytes = new Uint8Array(Buffer.concat(blocks));
  return [{ name: 'seed.tar', bytes, fields }];
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let n = Buffer.byteLength(body) + 1;
  while (String(n).length + Buffer.byteLength(body) !== n) n++;
  return `${n}${body}`;
}

export function writeTarChecksum(header: Uint8Array): void {
  header.fill(0x20, 148, 156);
  const sum = header.reduce((a, b) => a + b, 0);
  header.set(Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `, 'latin1'), 148);
}

export interface TarContent {
  members: Array<{ name: string; offset: number; size: number; data: Buffer }>;
  skipped: SkipCounts;
}

export const TAR: Reader[] = [
  {
    call: 'scanTar(path) + readRange() of every member',
    fromPath: true,
    async read(path) {
      const skipped: SkipCounts = {};
      const members: TarContent['members'] = [];
      for await (const m of scanTar(path, skipped)) {
        members.push({ ...m, data: Buffer.from(await readRange({ path, offset: m.offset, size: m.size })) });
      }
      return { members, skipped };
    },
    diff(a, b) {
      const x = a as TarContent;
      const y = b as TarContent;
      if (Object.keys(x.skipped).length)
        return `skipped ${JSON.stringify(x.skipped)} after ${x.members.length} members`;
      const names = (c: TarContent) => c.members.map((m) => m.name).join(', ');
      if (names(x) !== names(y)) {
        const short = x.members.map((m) => (m.name.length > 32 ? `…${m.name.slice(-24)}` : m.name));
        return `${x.members.length} of ${y.members.length} members (${short.join(', ') || 'none'}), no skip counted`;
      }
      const changed = x.members.find((m, i) => !m.data.equals(y.members[i].data));
      return changed ? `member '${changed.name}' has different data` : undefined;
    },
  },
];

/**
 * Tar's own rules for a different listing. A damaged archive counted in `skipped` is reported,
 * not accepted: survived. Bytes changed inside a member's data blocks and read back as exactly
 * those bytes, or inside a GNU long name or pax record (tar checksums neither), or a header edited with
 * its checksum fixed: what the format allows, counted apart. Undefined otherwise (silent).
 */
export function judgeTar(value: TarContent, original: TarContent, m: Mutated, seed: Seed): Trial | undefined {
  if (Object.keys(value.skipped).length)
    return { outcome: 'survived', detail: 'damage reported', tag: 'damage reported' };
  if (m.consistent)
    return { outcome: 'survived', detail: 'valid edited header, read as written', tag: 'consistent header edit' };
  if (!m.changed) return undefined;
  // Tar's header checksum is a plain byte sum: changes that cancel out (one bit flipped up, the
  // same bit flipped down in another byte) leave a valid header the format cannot tell apart.
  if (m.changed.every((at) => inHeaderWithValidSum(m.bytes, at, original)))
    return { outcome: 'survived', detail: 'header changed, its byte sum unchanged', tag: 'consistent header edit' };
  // A member's data blocks: its data and the padding to the next 512-byte block (which tar ignores).
  const blocks = (o: { offset: number; size: number }) => o.offset + Math.ceil(o.size / 512) * 512;
  const inData = m.changed.every((at) => original.members.some((o) => at >= o.offset && at < blocks(o)));
  const asChanged =
    value.members.length === original.members.length &&
    value.members.every(
      (v, i) =>
        v.name === original.members[i].name &&
        v.data.equals(
          Buffer.from(
            m.bytes.subarray(original.members[i].offset, original.members[i].offset + original.members[i].size),
          ),
        ),
    );
  if (inData && asChanged)
    return { outcome: 'survived', detail: 'member data changed, read back as changed', tag: 'member data as changed' };
  // The data blocks of the 'L' and 'x' entries: after their headers, before the member they name.
  const metaBlocks = tarMetadataData(seed.bytes);
  if (m.changed.every((at) => metaBlocks.some(([b, e]) => at >= b && at < e)))
    return { outcome: 'survived', detail: 'long-name/pax data changed (no checksum)', tag: 'pax data changed' };
  return undefined;
}

/** True when byte `at` lies in a member's header (not its data) and that header's checksum still holds. */
function inHeaderWithValidSum(bytes: Uint8Array, at: number, original: TarContent): boolean {
  const start = at - (at % 512);
  if (original.members.some((o) => at >= o.offset && at < o.offset + Math.ceil(o.size / 512) * 512)) return false;
  const header = Uint8Array.from(bytes.subarray(start, start + 512));
  if (header.length < 512 || header.every((b) => b === 0)) return false;
  const stored = Number.parseInt(Buffer.from(header.subarray(148, 156)).toString('latin1'), 8);
  header.fill(0x20, 148, 156);
  return stored === header.reduce((a, b) => a + b, 0);
}

/** [begin, end) of the data of every GNU long-name and pax entry in a tar. */
function tarMetadataData(bytes: Uint8Array): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let at = 0; at + 512 <= bytes.length; ) {
    const header = bytes.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const size = Number.parseInt(Buffer.from(header.subarray(124, 135)).toString('latin1'), 8) || 0;
    if (header[156] === 0x4c || header[156] === 0x78) out.push([at + 512, at + 512 + Math.ceil(size / 512) * 512]);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}
