import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import {
  type LevelSamples,
  TRAIN_PRESETS,
  openRun,
  openWebRun,
  parseTrainConfig,
  parseWebRunManifest,
  train,
} from '@matryoshka-ts/pipelines';
import { exportWebCommand } from './export-command.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mdm-export-'));
const full = join(dir, 'full'); // trained into its last phase: both levels
const early = join(dir, 'early'); // stopped in its first phase: the 4 px level alone

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
  const config = parseTrainConfig({ ...TRAIN_PRESETS.micro, backend: 'cpu' });
  await train(config, { out: full, steps: 4 });
  await train(config, { out: early, steps: 2 });
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The exported folder opened as the page opens it (from the files' bytes). */
function openExported(web: string) {
  const read = (name: string) => JSON.parse(readFileSync(join(web, name), 'utf8'));
  return openWebRun({
    manifest: read('web-run.json'),
    config: read('config.json'),
    weights: readFileSync(join(web, 'weights.safetensors')),
  });
}

const options = {
  captions: ['grinning face', 'smiling face'],
  labels: [0, 0],
  steps: 3,
  sampler: 'ddpm' as const,
  eta: 0,
  guidance: 3,
  threshold: 'dynamic' as const,
  seed: 11,
};
const images = (samples: LevelSamples[]) => samples.map((l) => l.images);

it('exports a run that samples in the page as `mdm-train sample` samples it', async () => {
  const web = join(dir, 'web-full');
  const files = await exportWebCommand({ run: full, web, ema: true });
  expect(files.map((f) => f.slice(web.length + 1))).toEqual(['config.json', 'weights.safetensors', 'web-run.json']);
  const manifest = parseWebRunManifest(JSON.parse(readFileSync(join(web, 'web-run.json'), 'utf8')));
  expect(manifest).toMatchObject({
    step: 4,
    phase: 1,
    from: 0,
    ema: true,
    levels: [
      { resolution: 8, channels: 3, frames: 1 },
      { resolution: 4, channels: 3, frames: 1 },
    ],
    conditioning: { kind: 'text', encoder: { kind: 'hashed-words', width: 16, maxTokens: 4 } },
    sampling: { steps: 2, sampler: 'ddpm', eta: 0, guidance: 3, threshold: 'dynamic' },
  });
  expect(manifest.prompts.length).toBeGreaterThan(3);
  const page = openExported(web);
  const node = await openRun(full);
  expect(images(await page.generate(options))).toEqual(images(await node.generate(options)));
  page.dispose();
  node.dispose();
}, 60_000);

it("exports a run stopped in an earlier phase as that phase's model", async () => {
  const web = join(dir, 'web-early');
  await exportWebCommand({ run: early, web, ema: true });
  const page = openExported(web);
  expect(page.manifest).toMatchObject({ step: 2, phase: 0, from: 1, levels: [{ resolution: 4 }] });
  const node = await openRun(early);
  expect(images(await page.generate(options))).toEqual(images(await node.generate(options)));
  page.dispose();
  node.dispose();
}, 60_000);

/** `mdm-train …` from the repository root; its stderr when it fails. */
function mdmTrainFails(args: string[]): string {
  try {
    execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', 'apps/trainer/src/cli.ts', ...args], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    return String((error as { stderr?: string }).stderr);
  }
  throw new Error(`mdm-train ${args.join(' ')} succeeded`);
}

it('refuses what it cannot export with one clear line', () => {
  const staged = join(dir, 'staged');
  mkdirSync(staged);
  writeFileSync(
    join(staged, 'run.json'),
    JSON.stringify({ format: 'matryoshka-ts/run/1', kind: 'cascaded', stages: [{}, {}] }),
  );
  const aFile = join(dir, 'a-file');
  writeFileSync(aFile, 'not a folder');
  const errors = [
    mdmTrainFails(['export', '--web', join(dir, 'out'), '--run', join(dir, 'no-such-run')]),
    mdmTrainFails(['export', '--web', join(dir, 'out'), '--run', staged]),
    mdmTrainFails(['export', '--web', aFile, '--run', full]),
    mdmTrainFails(['export', '--web', join(dir, 'out'), '--run', aFile]),
  ];
  expect(errors[0]).toMatch(/^mdm-train: no run or checkpoint at .*no-such-run/);
  expect(errors[1]).toMatch(
    /^mdm-train: .*staged: cannot export a cascaded run for the web: it samples through 2 models/,
  );
  expect(errors[2]).toMatch(/^mdm-train: --web .*a-file: is a file; give a folder/);
  expect(errors[3]).toMatch(/^mdm-train: .*a-file: header length \d+ runs past the end of the 12-byte file/);
  for (const text of errors) expect(text.trim().split('\n')).toHaveLength(1);
  expect(mdmTrainFails(['export', '--run', full])).toMatch(/required option '--web <dir>' not specified/);
}, 60_000);
