import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OpenRun } from '@matryoshka-ts/pipelines';
import { afterAll, describe, expect, it } from 'vitest';
import { generateCommand, imagePath, spreadIndices } from './generate-command.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-eval-generate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('spreadIndices: which data-set entries condition n samples', () => {
  it('spreads n ≤ size evenly: distinct entries, one per size/n stretch, from the first to near the last', () => {
    const picked = spreadIndices(64, 169);
    expect(picked).toHaveLength(64);
    expect(new Set(picked).size).toBe(64);
    expect(picked[0]).toBe(0);
    expect(picked[63]).toBe(166); // ⌊63·169/64⌋
    // Pick i sits at its share i/64 of the set (rounded down), so gaps are 2 or 3 entries: no topic of a
    // sorted set is skipped.
    picked.forEach((p, i) => {
      expect(p).toBeLessThanOrEqual((i * 169) / 64);
      expect(p).toBeGreaterThan((i * 169) / 64 - 1);
    });
    const gaps = picked.slice(1).map((p, i) => p - picked[i]);
    expect(new Set(gaps)).toEqual(new Set([2, 3]));
    expect(spreadIndices(3, 3)).toEqual([0, 1, 2]);
    expect(spreadIndices(2, 10)).toEqual([0, 5]);
  });

  it('cycles through the set when n > size', () => {
    expect(spreadIndices(5, 3)).toEqual([0, 1, 2, 0, 1]);
  });
});

describe('generate conditions a run on its own captions spread over its data set', () => {
  /** A stand-in image run over a 10-entry data set; generate returns grey images. */
  function stubRun(): OpenRun {
    return {
      kind: 'mdm',
      checkpoint: 'stub.safetensors',
      config: { sampling: { guidance: 2, steps: 3, sampler: 'ddim', threshold: 'none' }, schedule: { steps: 1000 } },
      progress: { step: 7 },
      resolutions: [4],
      levels: [{ resolution: 4, channels: 3, frames: 1 }],
      conditioner: { kind: 'text' },
      dataset: () => ({ size: 10, get: (i: number) => ({ caption: `caption ${i}` }) }),
      prepare: async () => {},
      generate: (options: { captions: string[] }) => [
        {
          resolution: 4,
          channels: 3,
          frames: 1,
          images: options.captions.map(() => new Float32Array(48)),
        },
      ],
      dispose: () => {},
    } as unknown as OpenRun;
  }

  it('writes the spread captions, records it, and refuses to resume a directory of an older version', async () => {
    const out = join(dir, 'spread');
    const result = await generateCommand({ run: 'stub', out, n: 4, batch: 2, opened: stubRun() });
    expect(result.manifest.conditions).toBe('spread');
    expect(readFileSync(join(out, 'captions.txt'), 'utf8').trim().split('\n')).toEqual([
      'caption 0',
      'caption 2',
      'caption 5',
      'caption 7',
    ]);
    expect(readFileSync(imagePath(out, 3)).length).toBeGreaterThan(0);

    // An older mdm-eval wrote no `conditions` (its samples used captions 0…3): not resumed, and the reason named.
    const manifestPath = join(out, 'manifest.json');
    const { conditions: _, ...older } = JSON.parse(readFileSync(manifestPath, 'utf8'));
    writeFileSync(manifestPath, JSON.stringify(older));
    await expect(generateCommand({ run: 'stub', out, n: 4, batch: 2, opened: stubRun() })).rejects.toThrow(
      /other settings \(conditions: in order → spread\).*spread over its data set/,
    );
  });
});
