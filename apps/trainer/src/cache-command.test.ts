import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyT5 } from '@matryoshka-ts/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheCommand, cacheRunConfig, runCacheCommand } from './cache-command.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-cache-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A tiny "FLAN-T5" export: characters as unigram pieces, an embedding lookup 16 wide.
const D = 16;
const encoderDir = writeTinyT5(join(dir, 'tiny-t5'), { width: D, seed: 3 });

/** The micro preset with the ONNX encoder, on the 5 images of the Component category; its text cache in `cache`. */
function configFile(cache: string): string {
  const path = join(dir, `config-${readdirSync(dir).length}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      data: { skinTones: false, categories: ['Component'] },
      conditioning: { kind: 'text', encoder: { kind: 'onnx', path: encoderDir, width: D, maxTokens: 6, cache } },
      backend: 'cpu',
    }),
  );
  return path;
}

describe('mdm-train cache', () => {
  it('fills the text-feature cache in 2 shards, resumes a shard, then merges: the bytes of one process', async () => {
    const one = join(dir, 'one');
    const whole = await runCacheCommand({ preset: 'micro', config: configFile(one), out: join(dir, 'run') });
    expect(whole.shard).toBeNull();
    expect(whole.caches.map((c) => [c.cache, c.total, c.encoded, c.present])).toEqual([['text-features', 6, 6, 0]]);

    const split = join(dir, 'split');
    const config = configFile(split);
    const shards = [];
    for (const shard of [1, 0, 1])
      shards.push(await runCacheCommand({ preset: 'micro', config, shard: { index: shard, count: 2 } }));
    expect(shards.map((r) => [r.shard, r.caches[0].total, r.caches[0].encoded, r.caches[0].present])).toEqual([
      ['1/2', 3, 3, 0],
      ['0/2', 3, 3, 0],
      // The same shard again: its finished part is kept, nothing encoded.
      ['1/2', 3, 0, 3],
    ]);
    const merged = await runCacheCommand({ preset: 'micro', config });
    expect(merged.caches[0]).toMatchObject({
      encoded: 0,
      present: 6,
      merged: ['0/2', '1/2'],
      missing: [],
      foreign: [],
    });
    const files = (d: string) => readdirSync(d).map((f) => readFileSync(join(d, f)));
    expect(files(split)).toEqual(files(one));
    // After the merge a shard finds its captions in the cache and writes no part.
    const again = await runCacheCommand({ preset: 'micro', config, shard: { index: 0, count: 2 } });
    expect(again.caches[0]).toMatchObject({ encoded: 0, present: 3 });
    expect(readdirSync(split)).toHaveLength(1);
  }, 120_000);

  it('refuses a run with nothing to cache, and a bad --shard, naming them', async () => {
    await expect(runCacheCommand({ preset: 'micro', set: ['backend=cpu'] })).rejects.toThrow(
      /nothing to cache: a mdm run with text conditioning \(hashed-words encoder\)/,
    );
    expect(() => cacheRunConfig({ preset: 'nope' })).toThrow(/unknown preset 'nope'/);
    const command = cacheCommand()
      .exitOverride()
      .configureOutput({ writeErr: () => {} });
    await expect(command.parseAsync(['--shard', '3/3'], { from: 'user' })).rejects.toThrow(/--shard must be i\/n/);
  });
});
