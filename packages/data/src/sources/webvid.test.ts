import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ffmpegInstaller from '@ffmpeg-installer/ffmpeg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeVideoClip } from '../decode.js';
import type { SampleRef, SkipCounts } from './source.js';
import { webvidSource } from './webvid.js';

/** The ffmpeg shipped in the npm package (tests only). */
const FFMPEG = ffmpegInstaller.path;
const dir = mkdtempSync(join(tmpdir(), 'mdm-webvid-'));
const videos = join(dir, 'videos');
const csv = join(dir, 'results_2M_train.csv');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const row = (id: string, pageDir: string, name: string | Buffer) =>
  Buffer.concat([
    Buffer.from(`${id},https://ak.picdn.net/shutterstock/videos/${id}/preview/stock.mp4,PT00H00M10S,${pageDir},`),
    Buffer.from(name),
    Buffer.from('\n'),
  ]);

beforeAll(() => {
  mkdirSync(join(videos, '000001_000050'), { recursive: true });
  const clip = join(dir, 'clip.mp4');
  execFileSync(FFMPEG, [
    '-y',
    '-v',
    'error',
    '-nostdin',
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=48x32:rate=25',
    '-t',
    '3',
    '-pix_fmt',
    'yuv420p',
    clip,
  ]);
  copyFileSync(clip, join(videos, '000001_000050', '1001.mp4')); // <videos>/<page_dir>/<videoid>.mp4
  copyFileSync(clip, join(videos, '1002.mp4')); // <videos>/<videoid>.mp4
  copyFileSync(clip, join(videos, '1007.mp4'));
  writeFileSync(join(videos, '1006.mp4'), 'not a video at all');
  writeFileSync(join(videos, '1009.mp4'), ''); // an empty download
  writeFileSync(
    csv,
    Buffer.concat([
      Buffer.from('videoid,contentUrl,duration,page_dir,name\n'),
      row('1001', '000001_000050', '"A cat, sitting ""still""\non a mat"'),
      row('1002', '000001_000050', 'Aerial view of a coast'),
      row('1003', '000001_000050', 'A video that was never downloaded'),
      row('1004', '000001_000050', Buffer.from([0x63, 0x61, 0x66, 0xe9])), // Latin-1
      row('1005', '000001_000050', ''),
      row('1006', '000001_000050', 'A corrupt download'),
      Buffer.from('1008\n'),
      row('1007', '000002_000100', 'Timelapse of clouds'),
      row('1009', '000002_000100', 'An empty file'),
    ]),
  );
});

async function samples(
  source: Awaited<ReturnType<typeof webvidSource>>,
  skipped: SkipCounts = {},
): Promise<SampleRef[]> {
  const out: SampleRef[] = [];
  for (let i = 0; i < source.shards.length; i++) for await (const ref of source.scan(i, skipped)) out.push(ref);
  return out;
}

describe('webvidSource', () => {
  it('reads the CSV end to end in blocks of rows, finding videos in both layouts and counting bad rows', async () => {
    const source = await webvidSource({ csv, videos, rowsPerShard: 3, ffmpeg: FFMPEG });
    expect(source.kind).toBe('webvid');
    expect(source.rows).toBe(9);
    expect(source.shards).toEqual([`${csv}#rows=0-2`, `${csv}#rows=3-5`, `${csv}#rows=6-8`]);
    const skipped: SkipCounts = {};
    const refs = await samples(source, skipped);
    expect(refs.map((r) => [r.key, r.caption, r.video, r.label])).toEqual([
      ['1001', 'A cat, sitting "still"\non a mat', true, -1],
      ['1002', 'Aerial view of a coast', true, -1],
      ['1006', 'A corrupt download', true, -1],
      ['1007', 'Timelapse of clouds', true, -1],
    ]);
    expect(refs[0].image.path).toBe(join(videos, '000001_000050', '1001.mp4'));
    expect(refs[1].image.path).toBe(join(videos, '1002.mp4'));
    expect(skipped).toEqual({
      'missing video': 1,
      'caption not UTF-8': 1,
      'missing caption': 1,
      'malformed row': 1,
      'empty video': 1,
    });
  });

  it('scans each block on its own (shards can be shuffled and divided between ranks)', async () => {
    const source = await webvidSource({ csv, videos, rowsPerShard: 3, ffmpeg: FFMPEG });
    const keys = async (i: number) => {
      const out = [];
      for await (const ref of source.scan(i, {})) out.push(ref.key);
      return out;
    };
    expect([await keys(2), await keys(0), await keys(1)]).toEqual([['1007'], ['1001', '1002'], ['1006']]);
    // default 1000 rows
    expect((await webvidSource({ csv, videos, ffmpeg: FFMPEG })).shards).toEqual([`${csv}#rows=0-8`]);
  });

  it('gives clips that decode, and references to corrupt videos whose decode throws', async () => {
    const refs = await samples(await webvidSource({ csv, videos, ffmpeg: FFMPEG }));
    const clip = await decodeVideoClip(refs[0].image.path, 16, { ffmpeg: FFMPEG });
    expect(clip.length).toBe(16 * 16 * 16 * 3);
    await expect(decodeVideoClip(refs[2].image.path, 16, { ffmpeg: FFMPEG })).rejects.toThrow('unreadable video');
  });

  it('fails at start without ffmpeg, a CSV, the video folder, or the columns', async () => {
    const missingFfmpeg = join(dir, 'no-ffmpeg');
    await expect(webvidSource({ csv, videos, ffmpeg: missingFfmpeg })).rejects.toThrow(
      'ffmpeg not found: install it (Debian: apt-get install ffmpeg) or set MDM_FFMPEG',
    );
    await expect(webvidSource({ csv: join(dir, 'nope.csv'), videos, ffmpeg: FFMPEG })).rejects.toThrow(
      `no such CSV file: ${join(dir, 'nope.csv')}`,
    );
    await expect(webvidSource({ csv, videos: join(dir, 'nope'), ffmpeg: FFMPEG })).rejects.toThrow(
      `no such video folder: ${join(dir, 'nope')}`,
    );
    const badHeader = join(dir, 'bad.csv');
    writeFileSync(badHeader, 'id,caption\n1,x\n');
    await expect(webvidSource({ csv: badHeader, videos, ffmpeg: FFMPEG })).rejects.toThrow(
      `${badHeader} is not a WebVid CSV`,
    );
    const headerOnly = join(dir, 'header-only.csv');
    writeFileSync(headerOnly, 'videoid,name\n');
    await expect(webvidSource({ csv: headerOnly, videos, ffmpeg: FFMPEG })).rejects.toThrow('has a header but no rows');
  });
});
