import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { paxRecord, tar } from '@matryoshka-ts/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import type { SkipCounts } from './source.js';
import { type TarMember, readRange, scanTar } from './tar.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-tar-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

async function scan(path: string): Promise<{ members: TarMember[]; skipped: SkipCounts }> {
  const skipped: SkipCounts = {};
  const members: TarMember[] = [];
  for await (const m of scanTar(path, skipped)) members.push(m);
  return { members, skipped };
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const big = 'x'.repeat(700); // spans two blocks, so offsets after it are not a fixed stride

describe('scanTar', () => {
  it('lists regular members with their data offsets, names resolved, other entries left out', async () => {
    const longName = `a/${'long-directory/'.repeat(8)}file.txt`;
    const path = file(
      'mixed.tar',
      tar([
        { name: 'dir/', type: '5' },
        { name: 'dir/one.txt', data: 'one' },
        { name: 'dir/big.txt', data: big },
        { name: '././@LongLink', type: 'L', data: `${longName}\0` },
        { name: longName.slice(0, 100), data: 'long' },
        { name: 'two.txt', prefix: 'deep/prefix', data: 'two' },
        { name: 'PaxHeader/x', type: 'x', data: paxRecord('path', 'päx/three.txt') },
        { name: 'ignored-name', data: 'three' },
        { name: 'link', type: '2' },
        { name: 'empty.txt', data: '' },
      ]),
    );
    const { members, skipped } = await scan(path);
    expect(members.map((m) => m.name)).toEqual([
      'dir/one.txt',
      'dir/big.txt',
      longName,
      'deep/prefix/two.txt',
      'päx/three.txt',
      'empty.txt',
    ]);
    expect(skipped).toEqual({});
    const contents = await Promise.all(members.map((m) => readRange({ path, offset: m.offset, size: m.size })));
    expect(contents.map(text)).toEqual(['one', big, 'long', 'two', 'three', '']);
    expect(members[0].offset).toBe(2 * 512); // after the directory's header and its own
  });

  it('uses a pax size record for the member after it', async () => {
    // A member whose ustar size field says 0 but whose pax header gives the true size (as for ≥ 8 GiB).
    const bytes = tar([
      { name: 'PaxHeader/x', type: 'x', data: paxRecord('size', '5') },
      { name: 'sized.bin', data: '' },
      { name: 'after.txt', data: 'after' },
    ]);
    // Put 5 bytes of data (padded to a block) after the zero-size header, before the next header.
    const header2 = 1024; // the pax header and its one data block come first
    const withData = new Uint8Array(bytes.length + 512);
    withData.set(bytes.subarray(0, header2 + 512));
    withData.set(new TextEncoder().encode('12345'), header2 + 512);
    withData.set(bytes.subarray(header2 + 512), header2 + 1024);
    const path = file('pax-size.tar', withData);
    const { members } = await scan(path);
    expect(members.map((m) => [m.name, m.size])).toEqual([
      ['sized.bin', 5],
      ['after.txt', 5],
    ]);
    expect(text(await readRange({ path, ...members[0] }))).toBe('12345');
    expect(text(await readRange({ path, ...members[1] }))).toBe('after');
  });

  it('keeps what precedes damage and counts it once: truncated data, a cut header, a bad checksum', async () => {
    const good = tar([
      { name: 'a.txt', data: 'a' },
      { name: 'b.txt', data: big },
      { name: 'c.txt', data: 'c' },
    ]);
    const bHeader = 1024;
    const cut = await scan(file('cut-data.tar', good.subarray(0, bHeader + 512 + 100)));
    expect(cut.members.map((m) => m.name)).toEqual(['a.txt']);
    expect(cut.skipped).toEqual({ 'truncated tar': 1 });
    const cutHeader = await scan(file('cut-header.tar', good.subarray(0, bHeader + 200)));
    expect(cutHeader.members.map((m) => m.name)).toEqual(['a.txt']);
    expect(cutHeader.skipped).toEqual({ 'truncated tar': 1 });
    const garbled = good.slice();
    garbled[bHeader + 3] ^= 1;
    const corrupt = await scan(file('garbled.tar', garbled));
    expect(corrupt.members.map((m) => m.name)).toEqual(['a.txt']);
    expect(corrupt.skipped).toEqual({ 'corrupt tar': 1 });
  });

  it('reads an archive of only end blocks as empty, and counts an empty or missing file', async () => {
    expect(await scan(file('no-members.tar', tar([])))).toEqual({ members: [], skipped: {} });
    expect((await scan(file('zero.tar', new Uint8Array()))).skipped).toEqual({ 'empty file': 1 });
    expect((await scan(join(dir, 'missing.tar'))).skipped).toEqual({ 'unreadable file': 1 });
  });

  it('lists an archive without end blocks and counts it as truncated (a cut at a member boundary)', async () => {
    const bytes = tar([{ name: 'a.txt', data: 'a' }]);
    const { members, skipped } = await scan(file('no-end.tar', bytes.subarray(0, bytes.length - 1024)));
    expect(members.map((m) => m.name)).toEqual(['a.txt']);
    expect(skipped).toEqual({ 'truncated tar': 1 });
    // One end block (or the start of one) is a proper end: nothing was lost.
    const oneBlock = await scan(file('one-end.tar', bytes.subarray(0, bytes.length - 512)));
    expect(oneBlock.skipped).toEqual({});
    const partial = await scan(file('part-end.tar', bytes.subarray(0, bytes.length - 1000)));
    expect(partial.skipped).toEqual({});
  });
});

describe('readRange', () => {
  it('throws when the file is shorter than the range', async () => {
    const path = file('short.bin', new Uint8Array(10));
    expect((await readRange({ path, offset: 2, size: 8 })).length).toBe(8);
    await expect(readRange({ path, offset: 4, size: 8 })).rejects.toThrow('6 of 8 bytes');
    await expect(readRange({ path: join(dir, 'absent.bin'), offset: 0, size: 1 })).rejects.toThrow();
  });
});
