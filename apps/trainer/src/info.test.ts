import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { modelInfo } from './info.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('mdm-train info', () => {
  // The official code's counts for its shipped configs (measured in PyTorch; see shared/reference).
  it.each([
    ['cc12m-64', 461_359_107, [461_359_107]],
    ['cc12m-256', 476_613_958, [15_254_851, 461_359_107]],
    ['cc12m-1024', 480_970_057, [4_356_099, 15_254_851, 461_359_107]],
  ])('%s counts %i parameters like the official code', (name, total, perLevel) => {
    const info = modelInfo({ preset: name });
    expect(info.total).toBe(total);
    expect(info.levels.map((l) => l.params)).toEqual(perLevel);
    expect(info.levels.reduce((n, l) => n + l.params, 0)).toBe(total);
  });

  it("the video presets count per level, each level's kind and frames named", () => {
    const info = modelInfo({ preset: 'MDM-S64T16S256' });
    expect(info.levels.map((l) => [l.resolution, l.frames, l.kind])).toEqual([
      [256, 16, 'spatialPerFrame'],
      [64, 16, 'temporal'],
      [64, 1, 'image'],
    ]);
    expect(info.levels.reduce((n, l) => n + l.params, 0)).toBe(info.total);
    // The same temporal level and image UNet as MDM-S64T16; the image UNet is MDM-S64's.
    const t16 = modelInfo({ preset: 'MDM-S64T16' });
    expect(t16.levels.map((l) => l.params)).toEqual(info.levels.slice(1).map((l) => l.params));
    expect(t16.levels[1].params).toBe(modelInfo({ preset: 'MDM-S64' }).total);
  });

  it('cc12m-64 without text layers counts 362,618,883', () => {
    expect(modelInfo({ preset: 'cc12m-64', conditioning: 'none' }).total).toBe(362_618_883);
  });

  it('rejects an unknown preset and a missing choice', () => {
    expect(() => modelInfo({ preset: 'MDM-S32' })).toThrow(/Unknown preset 'MDM-S32'.*MDM-S64/);
    expect(() => modelInfo({})).toThrow(/exactly one of --preset/);
  });

  it('prints one JSON line from the root command `pnpm mdm-train info`', () => {
    // The pnpm running this test (npm_execpath) when known, else the one on PATH.
    const execpath = process.env.npm_execpath;
    const [cmd, pre] = execpath && /pnpm/.test(execpath) ? [process.execPath, [execpath]] : ['pnpm', []];
    const out = execFileSync(cmd, [...pre, '--silent', 'mdm-train', 'info', '--preset', 'MDM-S64S256'], {
      cwd: root,
      encoding: 'utf8',
    });
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(1);
    const info = JSON.parse(lines[0]);
    expect(info.preset).toBe('MDM-S64S256');
    expect(info.levels.map((l: { resolution: number }) => l.resolution)).toEqual([256, 64]);
    expect(info.total).toBe(info.levels[0].params + info.levels[1].params);
  }, 60_000);
});
