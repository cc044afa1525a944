import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '@matryoshka-ts/core';
import { type TarWriterMember, paxRecord, seeded, tar } from '@matryoshka-ts/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import type { SkipCounts } from './source.js';
import { MAX_TAR_METADATA_BYTES, type TarContents, type TarMember, readTar, scanTar, tarMembers } from './tar.js';

// Seeded fuzzing of the tar reader: every mutation of a small valid archive must come out as members
// (changed data only where the mutation hit a member's data), or as members up to the damage plus
// ONE counted skip, or (reading a file) a DataError naming it — never another error, a hang, a read
// of more than a block or a metadata entry at once, or a header accepted under another name or size.

const dir = mkdtempSync(join(tmpdir(), 'mdm-tar-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rng = seeded(20240619);
const randInt = (n: number) => Math.floor(rng() * n);
const pick = <T>(items: readonly T[]): T => items[randInt(items.length)];
const randomBytes = (n: number, draw = () => randInt(256)) => Uint8Array.from({ length: n }, draw);

const LONG_NAME = `a/${'long-directory/'.repeat(8)}file.txt`;
const WRITTEN: TarWriterMember[] = [
  { name: 'one.txt', data: 'one' },
  { name: '././@LongLink', type: 'L', data: `${LONG_NAME}\0` },
  { name: LONG_NAME.slice(0, 100), data: 'y'.repeat(700) },
  { name: 'PaxHeader/x', type: 'x', data: paxRecord('path', 'päx/three.bin') + paxRecord('mtime', '1') },
  { name: 'ignored-name', data: randomBytes(300) },
  { name: 'dir/', type: '5' },
  { name: 'empty.txt', data: '' },
  { name: 'last.jpg', data: randomBytes(1000) },
];
const ORIGINAL = new Uint8Array(tar(WRITTEN)); // a plain Uint8Array, not a Buffer, so views compare equal

interface Region {
  header: number;
  data: number;
  size: number;
  type: string;
}
/** Where each written entry's header and data lie (tar() writes them back to back, data padded to blocks). */
const REGIONS: Region[] = [];
for (let offset = 0, i = 0; i < WRITTEN.length; i++) {
  const m = WRITTEN[i];
  const size = typeof m.data === 'string' ? new TextEncoder().encode(m.data).length : (m.data?.length ?? 0);
  REGIONS.push({ header: offset, data: offset + 512, size, type: m.type ?? '0' });
  offset += 512 + Math.ceil(size / 512) * 512;
}
const META = REGIONS.filter((r) => r.type === 'L' || r.type === 'x');
const END = REGIONS.at(-1)!.data + 1024; // start of the two zero blocks

/** The members the unmutated archive holds, and where each one's entries (metadata headers included) start. */
const EXPECTED = await readTar(ORIGINAL);
const SPAN_START = EXPECTED.members.map((m) => {
  const own = REGIONS.findIndex((r) => r.data === m.offset);
  const first = own > 0 && (REGIONS[own - 1].type === 'L' || REGIONS[own - 1].type === 'x') ? own - 1 : own;
  return REGIONS[first].header;
});

interface Mutation {
  kind: string;
  bytes: Uint8Array;
  /** The bytes changed: [from, to) of the result (to = Infinity for a cut or appended tail). */
  from: number;
  to: number;
  /** A header edited and its checksum made valid again: names and sizes may legitimately differ. */
  forged?: boolean;
}

function writeOctal(bytes: Uint8Array, at: number, width: number, value: number): void {
  const text = `${value.toString(8).padStart(width - 1, '0')}\0`;
  for (let i = 0; i < width; i++) bytes[at + i] = text.charCodeAt(i);
}
function fixChecksum(bytes: Uint8Array, header: number): void {
  bytes.fill(0x20, header + 148, header + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += bytes[header + i];
  writeOctal(bytes, header + 148, 7, sum);
  bytes[header + 155] = 0x20;
}
/** GNU base-256: 0x80, then the value big-endian in the remaining 11 bytes. */
function writeBase256(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = 0x80;
  for (let i = 11; i >= 1; i--, value = Math.floor(value / 256)) bytes[at + i] = value % 256;
}

const TEN_GB = 10 * 2 ** 30;
const SIZES = [0, 1, 511, 512, 513, 4096, 8 ** 11 - 1, TEN_GB, 2 ** 60];

function mutate(): Mutation {
  const bytes = ORIGINAL.slice();
  const header = pick(REGIONS).header;
  switch (randInt(11)) {
    case 0: {
      const at = randInt(bytes.length);
      bytes[at] ^= 1 << randInt(8);
      return { kind: 'bit flip', bytes, from: at, to: at + 1 };
    }
    case 1: {
      const at = header + randInt(512);
      bytes[at] = randInt(256);
      return { kind: 'header byte', bytes, from: at, to: at + 1 };
    }
    case 2: {
      const region = pick(REGIONS.filter((r) => r.size > 0));
      const at = region.data + randInt(region.size);
      bytes[at] = randInt(256);
      return { kind: 'data byte', bytes, from: at, to: at + 1 };
    }
    case 3: {
      const length = randInt(bytes.length);
      return { kind: 'truncation', bytes: bytes.subarray(0, length), from: length, to: Number.POSITIVE_INFINITY };
    }
    case 4: {
      const length = 512 * randInt(bytes.length / 512);
      return { kind: 'block truncation', bytes: bytes.subarray(0, length), from: length, to: Number.POSITIVE_INFINITY };
    }
    case 5: {
      // A size field edited, checksum left alone: the header no longer checks.
      const text = pick(['99999999999', '7777777777\0', '00000000000 ', ' 1e3', '-1', '\0\0\0\0', 'zzzzzzzzzzz']);
      for (let i = 0; i < 12; i++) bytes[header + 124 + i] = i < text.length ? text.charCodeAt(i) : 0;
      return { kind: 'size field', bytes, from: header + 124, to: header + 136 };
    }
    case 6: {
      // A size field edited with a valid checksum: the format cannot tell; the reader must stay bounded.
      const size = pick(SIZES);
      if (size < 8 ** 11) writeOctal(bytes, header + 124, 12, size);
      else writeBase256(bytes, header + 124, size);
      fixChecksum(bytes, header);
      return { kind: 'forged size', bytes, from: header, to: header + 512, forged: true };
    }
    case 7: {
      const at = header + 148 + randInt(8);
      bytes[at] = pick([0, 0x20, 0x30 + randInt(8), randInt(256)]);
      return { kind: 'checksum field', bytes, from: at, to: at + 1 };
    }
    case 8: {
      const garbage = randomBytes(1 + randInt(2000));
      const out = new Uint8Array(bytes.length + garbage.length);
      out.set(bytes);
      out.set(garbage, bytes.length);
      return { kind: 'garbage appended', bytes: out, from: bytes.length, to: Number.POSITIVE_INFINITY };
    }
    case 9: {
      // Records of a pax header or long name rewritten with the characters that matter to a parser.
      const region = pick(META);
      const at = region.data + randInt(region.size);
      const n = 1 + randInt(6);
      const chars = '0123456789 .e-+=\n\0x';
      for (let i = 0; i < n && at + i < region.data + region.size; i++)
        bytes[at + i] = chars.charCodeAt(randInt(chars.length));
      return { kind: 'metadata record', bytes, from: at, to: at + n };
    }
    default: {
      const at = pick([...REGIONS.map((r) => r.header), END]);
      bytes.fill(0, at, at + 512);
      return { kind: 'zeroed block', bytes, from: at, to: at + 512 };
    }
  }
}

const overlaps = (m: Mutation, from: number, to: number) => m.from < to && from < m.to;
const REASONS = new Set(['corrupt tar', 'truncated tar', 'empty file']);

/** Lists through a reader that copies what it reads (as a file read does) and records the largest read. */
async function spiedListing(
  bytes: Uint8Array,
): Promise<{ members: TarMember[]; skipped: SkipCounts; largest: number }> {
  let largest = 0;
  let reads = 0;
  const skipped: SkipCounts = {};
  const members: TarMember[] = [];
  const read = async (position: number, length: number) => {
    largest = Math.max(largest, length);
    if (++reads > bytes.length / 512 + 10) throw new Error('tar reader: more reads than blocks (a loop?)');
    return bytes.slice(position, position + length);
  };
  for await (const m of tarMembers(read, bytes.length, skipped)) members.push(m);
  return { members, skipped, largest };
}

const listing = (c: TarContents | { members: TarMember[]; skipped: SkipCounts }) => ({
  members: c.members.map(({ name, offset, size }) => ({ name, offset, size })),
  skipped: c.skipped,
});

/** Checks one mutation's outcome against the rules above; returns its class for the tally. */
async function check(m: Mutation): Promise<string> {
  const got = await readTar(m.bytes);
  const spied = await spiedListing(m.bytes);
  expect(listing(spied)).toEqual(listing(got));
  // Bounded: one block, or one long name / pax header, at a time; never a size field's claim.
  expect(spied.largest).toBeLessThanOrEqual(Math.max(512, Math.min(m.bytes.length, MAX_TAR_METADATA_BYTES)));
  const reasons = Object.keys(got.skipped);
  const skips = Object.values(got.skipped).reduce((a, b) => a + b, 0);
  expect(skips).toBeLessThanOrEqual(1); // damage is counted once, then the archive is left
  for (const reason of reasons) expect(REASONS).toContain(reason);
  for (const member of got.members) {
    expect(member.offset + member.size).toBeLessThanOrEqual(m.bytes.length);
    expect(sameBytes(member.data, m.bytes.subarray(member.offset, member.offset + member.size))).toBe(true);
  }
  // A forged header, or edited pax / long-name records (which tar does not checksum), may rename or resize.
  const renamable = m.forged || META.some((r) => overlaps(m, r.data, r.data + r.size));
  let changedData = false;
  if (!renamable) {
    got.members.forEach((member, i) => {
      const want = EXPECTED.members[i];
      expect({ name: member.name, offset: member.offset, size: member.size }).toEqual({
        name: want.name,
        offset: want.offset,
        size: want.size,
      });
      const same = sameBytes(member.data, want.data);
      if (overlaps(m, want.offset, want.offset + want.size)) changedData ||= !same;
      else expect(same, `data of ${want.name}`).toBe(true);
    });
    // Fewer members with nothing counted only where zero blocks now end the archive at a member's
    // boundary (between the last member read and the next one's first header; a folder entry may
    // lie there). A file that simply stops there has lost its end blocks: that is counted.
    const n = got.members.length;
    if (skips === 0 && n < EXPECTED.members.length) {
      const last = EXPECTED.members[n - 1];
      const from = last ? last.offset + Math.ceil(last.size / 512) * 512 : 0;
      const ends = (at: number) => at < m.bytes.length && m.bytes.subarray(at, at + 512).every((b) => b === 0);
      const boundaries = Array.from({ length: (SPAN_START[n] - from) / 512 + 1 }, (_, k) => from + 512 * k);
      expect(boundaries.some(ends)).toBe(true);
      return 'clean end before the damage';
    }
  }
  if (skips > 0) return `${got.members.length === EXPECTED.members.length ? 'all' : 'some'} members + ${reasons[0]}`;
  if (renamable && !sameListing(listing(got), listing(EXPECTED)))
    return 'members renamed/resized (forged or pax/long name)';
  return changedData ? 'all members, data changed' : 'all members, unchanged';
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const sameListing = (a: ReturnType<typeof listing>, b: ReturnType<typeof listing>) =>
  JSON.stringify(a) === JSON.stringify(b);

describe('tar reader fuzzing', () => {
  it('reads or counts every one of 500 seeded mutations, bounded, without a raw error', async () => {
    const tally: Record<string, number> = {};
    const files = join(dir, 'mutations');
    mkdirSync(files);
    for (let i = 0; i < 500; i++) {
      const m = mutate();
      const outcome = await check(m).catch((error: unknown) => {
        throw new Error(`mutation ${i} (${m.kind} at ${m.from}): ${(error as Error).message}`);
      });
      tally[outcome] = (tally[outcome] ?? 0) + 1;
      if (i % 8 === 0) {
        // Through the file readers too: the same listing, and only DataErrors naming the file.
        const path = join(files, `${i}.tar`);
        writeFileSync(path, m.bytes);
        const fromFile = await readTar(path).catch((error: unknown) => {
          expect(error).toBeInstanceOf(DataError);
          expect((error as Error).message).toContain(path);
          return undefined;
        });
        const scanned: TarMember[] = [];
        const skipped: SkipCounts = {};
        for await (const member of scanTar(path, skipped)) scanned.push(member);
        const fromBytes = listing(await readTar(m.bytes));
        if (fromFile) expect(listing(fromFile)).toEqual(fromBytes);
        expect(listing({ members: scanned, skipped })).toEqual(fromBytes);
      }
    }
    // Every kind of outcome the rules allow was met (the seed is fixed, so this is stable).
    expect(Object.keys(tally).length).toBeGreaterThanOrEqual(5);
    expect(tally['all members, data changed']).toBeGreaterThan(0);
    expect(tally['some members + corrupt tar']).toBeGreaterThan(0);
    expect(tally['some members + truncated tar']).toBeGreaterThan(0);
  });

  it('checks header checksums: one changed header byte is refused, never read as another name or size', async () => {
    for (const region of [REGIONS[0], REGIONS[2]]) {
      for (let at = region.header; at < region.header + 512; at++) {
        if (at >= region.header + 148 && at < region.header + 156) continue; // the checksum field itself
        const bytes = ORIGINAL.slice();
        bytes[at] ^= 0x40;
        const got = await readTar(bytes);
        expect(got.skipped).toEqual({ 'corrupt tar': 1 });
        expect(got.members.map((m) => m.name)).toEqual(
          EXPECTED.members.slice(0, region === REGIONS[0] ? 0 : 1).map((m) => m.name),
        );
      }
    }
  });

  it('counts a member claiming 10 GB in a 10 kB file as truncated, reading no more than a block', async () => {
    const bytes = ORIGINAL.slice();
    const header = REGIONS[7].header; // last.jpg
    writeBase256(bytes, header + 124, TEN_GB);
    fixChecksum(bytes, header);
    const spied = await spiedListing(bytes);
    expect(spied.largest).toBe(512);
    expect(spied.skipped).toEqual({ 'truncated tar': 1 });
    expect(spied.members).toHaveLength(EXPECTED.members.length - 1);
    const path = join(dir, 'ten-gb.tar');
    writeFileSync(path, bytes);
    const got = await readTar(path);
    expect(got.skipped).toEqual({ 'truncated tar': 1 });
    expect(got.members.map((m) => m.name)).toEqual(EXPECTED.members.slice(0, -1).map((m) => m.name));
    // The same claim through a pax size record.
    const pax = tar([
      { name: 'PaxHeader/x', type: 'x', data: paxRecord('size', String(TEN_GB)) },
      { name: 'huge.bin', data: '' },
    ]);
    expect((await readTar(pax)).skipped).toEqual({ 'truncated tar': 1 });
  });

  it('refuses a malformed pax header (it spun forever on a length of 1e-300) and an oversized one', async () => {
    const spin = tar([
      { name: 'PaxHeader/x', type: 'x', data: '1e-300 path=a\n' },
      { name: 'a.txt', data: 'a' },
    ]);
    expect(await readTar(spin)).toEqual({ members: [], skipped: { 'corrupt tar': 1 } });
    for (const data of ['0 path=a\n', '12 path=a\n', '9 path=a', ' 9 path=a\n', '11 size=1x\n', '5 =a\n'])
      expect(
        (
          await readTar(
            tar([
              { name: 'P', type: 'x', data },
              { name: 'a', data: 'a' },
            ]),
          )
        ).skipped,
      ).toEqual({
        'corrupt tar': 1,
      });
    const long = tar([
      { name: '././@LongLink', type: 'L', data: new Uint8Array(MAX_TAR_METADATA_BYTES + 1).fill(0x61) },
      { name: 'a.txt', data: 'a' },
    ]);
    const spied = await spiedListing(long);
    expect(spied).toEqual({ members: [], skipped: { 'corrupt tar': 1 }, largest: 512 });
  });

  it('counts a long name or pax header that the archive ends after, and a folder given as a tar', async () => {
    const bytes = tar([
      { name: 'a.txt', data: 'a' },
      { name: 'PaxHeader/x', type: 'x', data: paxRecord('path', 'lost.txt') },
    ]);
    const got = await readTar(bytes);
    expect(got.members.map((m) => m.name)).toEqual(['a.txt']);
    expect(got.skipped).toEqual({ 'truncated tar': 1 });
    expect(await readTar(new Uint8Array())).toEqual({ members: [], skipped: { 'empty file': 1 } });
    const folder = join(dir, 'folder.tar');
    mkdirSync(folder);
    expect(await readTar(folder)).toEqual({ members: [], skipped: { 'unreadable file': 1 } });
    const skipped: SkipCounts = {};
    for await (const _ of scanTar(folder, skipped)) expect.unreachable();
    expect(skipped).toEqual({ 'unreadable file': 1 });
  });
});
