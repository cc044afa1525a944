import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClipModel, Uint8Image } from '@matryoshka-ts/metrics';
import type { LevelSamples, OpenRun } from '@matryoshka-ts/pipelines';
import { ONNX_FLOAT, onnxModel, seeded } from '@matryoshka-ts/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { type Clip, clipComplete, clipGifPath, framePath, writeClips } from './clips.js';
import { fvdCommand, i3dInputBatch } from './fvd-command.js';
import { generateCommand, imagePath } from './generate-command.js';
import { captionedClips, captionedSamples, clipScoreOfClips, fidCommand, statsCommand } from './metric-commands.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mdm-eval-video-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const R = 8;
const FRAMES = 4;

/** n clips of FRAMES R×R RGB frames, values uniform in [lo, lo + 1] (a brighter set for a larger lo). */
function level(n: number, seed: number, lo = -0.5): LevelSamples {
  const random = seeded(seed);
  const images = Array.from({ length: n }, () =>
    Float32Array.from({ length: FRAMES * R * R * 3 }, () => lo + random()),
  );
  return { resolution: R, channels: 3, frames: FRAMES, images };
}

/** A generate-style samples directory of clips with captions. */
function samplesDir(name: string, l: LevelSamples, captions?: string[]): string {
  const out = join(dir, name);
  writeClips(out, l, 0);
  if (captions) writeFileSync(join(out, 'captions.txt'), `${captions.join('\n')}\n`);
  return out;
}

function writeModel(name: string, graph: Parameters<typeof onnxModel>[0]): string {
  const path = join(dir, name);
  writeFileSync(path, onnxModel(graph));
  return path;
}

// Image features: per-channel means (GlobalAveragePool + Flatten), any input size.
const meanFeatures = writeModel('mean.onnx', {
  inputs: [{ name: 'x', type: ONNX_FLOAT, shape: ['n', 3, 'h', 'w'] }],
  outputs: [{ name: 'y', type: ONNX_FLOAT, shape: ['n', 3] }],
  nodes: [
    { op: 'GlobalAveragePool', inputs: ['x'], outputs: ['p'] },
    { op: 'Flatten', inputs: ['p'], outputs: ['y'], attributes: { axis: 1 } },
  ],
});

// A stand-in I3D: [N, 3, T, S, S] → each frame's channel means, [N, 3·T] (ReduceMean over H, W + Flatten).
const fakeI3d = writeModel('i3d.onnx', {
  inputs: [{ name: 'video', type: ONNX_FLOAT, shape: ['n', 3, 't', 'h', 'w'] }],
  outputs: [{ name: 'features', type: ONNX_FLOAT, shape: ['n', 'd'] }],
  nodes: [
    { op: 'ReduceMean', inputs: ['video'], outputs: ['m'], attributes: { axes: [3, 4], keepdims: 0 } },
    { op: 'Flatten', inputs: ['m'], outputs: ['features'], attributes: { axis: 1 } },
  ],
});

describe('generate on a video level (a stand-in run)', () => {
  /** Just what generateCommand reads of a run; generate makes clips from the seed and counts its calls. */
  function stubRun(calls: number[]): OpenRun {
    return {
      kind: 'mdm',
      checkpoint: 'stub.safetensors',
      config: { sampling: { guidance: 2, steps: 3, sampler: 'ddim', threshold: 'none' }, schedule: { steps: 1000 } },
      progress: { step: 7 },
      resolutions: [R, 4],
      levels: [
        { resolution: R, channels: 3, frames: FRAMES },
        { resolution: 4, channels: 3, frames: 1 },
      ],
      conditioner: { kind: 'text' },
      dataset: () => ({ size: 3, get: (i: number) => ({ caption: `caption ${i}` }) }),
      prepare: async () => {},
      generate: (options: { captions: string[]; seed: number }) => {
        calls.push(options.seed);
        const n = options.captions.length;
        const clips = level(n, options.seed + 1);
        return [clips, { resolution: 4, channels: 3, frames: 1, images: clips.images.map(() => new Float32Array(48)) }];
      },
      dispose: () => {},
    } as unknown as OpenRun;
  }

  it('writes clips, records frames and fps, and resumes only the incomplete batches', async () => {
    const out = join(dir, 'generated');
    const calls: number[] = [];
    const options = { run: 'stub', out, n: 5, batch: 2, opened: stubRun(calls) };
    const first = await generateCommand(options);
    expect(first.generated).toBe(5);
    expect(first.manifest).toMatchObject({ n: 5, resolution: R, frames: FRAMES, fps: 8, step: 7 });
    expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).frames).toBe(FRAMES);
    expect(existsSync(join(out, 'images'))).toBe(false);
    expect(existsSync(imagePath(out, 0))).toBe(false);
    for (let i = 0; i < 5; i++) expect(clipComplete(out, i, FRAMES)).toBe(true);
    expect(readFileSync(join(out, 'captions.txt'), 'utf8').split('\n').slice(0, 4)).toEqual([
      'caption 0',
      'caption 1',
      'caption 2',
      'caption 0',
    ]);
    expect(calls).toEqual([0, 1, 2]);

    // Interrupted: clip 2 lost a frame, clip 4 its GIF. Batches 1 and 2 are made again, the same bytes.
    const frame = readFileSync(framePath(out, 2, 1, FRAMES));
    rmSync(framePath(out, 2, 1, FRAMES));
    rmSync(clipGifPath(out, 4));
    const resumed = await generateCommand(options);
    expect(resumed.generated).toBe(3);
    expect(calls.slice(3)).toEqual([1, 2]);
    expect(readFileSync(framePath(out, 2, 1, FRAMES)).equals(frame)).toBe(true);
    expect(clipComplete(out, 4, FRAMES)).toBe(true);

    await expect(generateCommand({ ...options, fps: 12 })).rejects.toThrow(/other settings \(fps: 8 → 12\)/);
    await expect(generateCommand({ ...options, out: join(dir, 'g2'), fps: 0 })).rejects.toThrow(
      /--fps must be positive/,
    );
  });
});

describe('per-frame FID and CLIP score', () => {
  const l = level(3, 10);
  const captions = ['a cat', 'a dog', 'a bird'];
  const samples = samplesDir('per-frame', l, captions);
  const network = { features: meanFeatures, size: 16 };

  it('stats and fid read every frame of video samples and say so', async () => {
    const out = join(dir, 'frames.npz');
    const stats = await statsCommand({ ...network, images: samples, out });
    expect(stats).toMatchObject({ n: 3 * FRAMES, per_frame: true, clips: 3, dim: 3, proxy: false });
    expect(JSON.parse(readFileSync(`${out}.json`, 'utf8'))).toMatchObject({ per_frame: true, clips: 3, n: 12 });

    const self = await fidCommand({ ...network, samples, reference: out });
    expect(Math.abs(self.fid)).toBeLessThan(1e-6);
    expect(self).toMatchObject({ n: 12, per_frame: true, clips: 3, frames: 12 });
    expect(self.reference).toMatchObject({ n: 12, per_frame: true, clips: 3 });

    // A folder of clip folders needs --frames (read as images it is the same frames, unlabelled).
    const folders = join(dir, 'clip-folders');
    cpSync(join(samples, 'clips'), folders, { recursive: true, filter: (path) => !path.endsWith('.gif') });
    const asClips = await fidCommand({ ...network, samples: folders, reference: samples, frames: true });
    expect(asClips).toMatchObject({ per_frame: true, clips: 3, frames: 12 });
    expect(Math.abs(asClips.fid)).toBeLessThan(1e-6);
    const asImages = await fidCommand({ ...network, samples: folders, reference: samples });
    expect(asImages).not.toHaveProperty('per_frame');
    expect(asImages.n).toBe(12);
  });

  it('captions line up with clips; captionedSamples gives frames with their clip caption', async () => {
    const { clips, captions: read } = await captionedClips(samples);
    expect(clips.map((c) => c.id)).toEqual(['000000', '000001', '000002']);
    expect(read).toEqual(captions);
    const { images, captions: perFrame } = await captionedSamples(samples);
    expect(images).toHaveLength(12);
    expect(perFrame.slice(3, 5)).toEqual(['a cat', 'a dog']);
    writeFileSync(join(dir, 'two.txt'), 'a\nb\n');
    await expect(captionedClips(samples, join(dir, 'two.txt'))).rejects.toThrow(/2 captions for 3 clips/);
  });

  it('CLIP score per frame: each frame against its caption, averaged per clip, then over clips', async () => {
    // A stub CLIP: image embedding (brightness, 1 − brightness), caption embedding fixed per word.
    const text: Record<string, [number, number]> = { light: [1, 0], dark: [0, 1] };
    const model: ClipModel = {
      id: 'stub',
      proxy: false,
      imageEmbeddings: async (images) =>
        Float32Array.from(
          images.flatMap((im) => {
            const b = im.data.reduce((s, v) => s + v, 0) / im.data.length / 255;
            return [b, 1 - b];
          }),
        ),
      textEmbeddings: async (captions) => Float32Array.from(captions.flatMap((c) => text[c])),
      dispose: () => {},
    } as ClipModel;
    const grey = (v: number): Uint8Image => ({ data: new Uint8Array(12).fill(v), width: 2, height: 2, channels: 3 });
    const clips: Clip[] = [
      { id: 'a', frames: [grey(255), grey(0)] },
      { id: 'b', frames: [grey(255), grey(255), grey(255), grey(0)] },
    ];
    const result = await clipScoreOfClips(model, clips, ['light', 'dark']);
    // Clip a, 'light': cosines 1 and 0 → 50. Clip b, 'dark': 0, 0, 0, 1 → 25. Mean over clips: 37.5.
    expect(Array.from(result.perClip)).toEqual([50, 25]);
    expect(result).toMatchObject({ score: 37.5, clips: 2, frames: 6, definition: 'torchmetrics' });
    expect(result.cosine).toBeCloseTo(0.375, 12);
    const orig = await clipScoreOfClips(model, clips, ['light', 'dark'], { definition: 'clipscore' });
    expect(orig.score).toBeCloseTo(2.5 * 0.375, 12);
    await expect(clipScoreOfClips(model, clips, ['light'])).rejects.toThrow(/2 clips but 1 captions/);
  });
});

describe('FVD', () => {
  const a = samplesDir('fvd-a', level(8, 20));
  const b = samplesDir('fvd-b', level(8, 21));
  const brighter = samplesDir('fvd-b-bright', level(8, 21, -0.2));
  const fvd = (samples: string, reference: string) =>
    fvdCommand({ samples, reference, i3d: fakeI3d, i3dSize: 16, batch: 3 });

  it('lays frames out NCTHW in [−1, 1] at the network size', () => {
    const frame = (v: number): Uint8Image => ({ data: new Uint8Array(12).fill(v), width: 2, height: 2, channels: 3 });
    const coloured: Uint8Image = {
      data: Uint8Array.from([0, 255, 51, 0, 255, 51, 0, 255, 51, 0, 255, 51]),
      width: 2,
      height: 2,
      channels: 3,
    };
    const x = i3dInputBatch([[frame(0), coloured, frame(255)]], 2);
    expect(x).toHaveLength(3 * 3 * 4);
    // [c][t][p]: channel 0 over frames −1, −1, 1; channel 1 over frames −1, 1, 1; channel 2 at t = 1: 51/127.5 − 1.
    expect(Array.from(x.subarray(0, 12))).toEqual([-1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1]);
    expect(Array.from(x.subarray(12, 24))).toEqual([-1, -1, -1, -1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(x[24 + 4]).toBeCloseTo(-0.6, 6);
    expect(i3dInputBatch([[frame(128)]], 5)).toHaveLength(75);
  });

  it('is ~0 for a set against itself, symmetric, and grows when one set is shifted', async () => {
    const self = await fvd(a, a);
    expect(Math.abs(self.fvd)).toBeLessThan(1e-9);
    expect(self).toMatchObject({
      n: 8,
      frames: FRAMES,
      dim: 3 * FRAMES,
      reference: { source: a, n: 8, frames: FRAMES },
    });
    expect(self.i3d).toMatch(/^i3d:i3d\.onnx#[0-9a-f]{12}@16$/);
    expect(self.preprocessing).toMatch(/bilinear .* to 16×16, \[−1, 1\], NCTHW/);
    const ab = await fvd(a, b);
    const ba = await fvd(b, a);
    expect(ab.fvd).toBeGreaterThan(0);
    expect(Math.abs(ab.fvd - ba.fvd)).toBeLessThan(1e-9 * ab.fvd);
    const shifted = await fvd(a, brighter);
    // Every feature's mean moves by 0.3 (in [−1, 1] units): the mean term alone is ~12 × 0.09.
    expect(shifted.fvd).toBeGreaterThan(ab.fvd + 0.5);
  });

  it('reads GIF clips too, counts skipped clips, and explains a missing or unusable network', async () => {
    const gifs = join(dir, 'fvd-gifs');
    mkdirSync(gifs);
    for (let i = 0; i < 8; i++) writeFileSync(join(gifs, `${i}.gif`), readFileSync(clipGifPath(a, i)));
    writeFileSync(join(gifs, 'broken.gif'), 'GIF89a broken');
    const result = await fvd(gifs, a);
    expect(result).toMatchObject({ n: 8, skipped: { 'corrupt gif': 1 } });
    // The GIF's palette and upscale move frames a little: close to the PNG frames' statistics, not equal.
    expect(result.fvd).toBeGreaterThan(0);
    expect(result.fvd).toBeLessThan((await fvd(brighter, a)).fvd);

    await expect(fvdCommand({ samples: a, reference: b })).rejects.toThrow(
      /fvd needs an I3D network as ONNX: --i3d <model\.onnx>.*docs\/evaluation\.md/,
    );
    await expect(fvdCommand({ samples: a, reference: b, i3d: join(dir, 'none.onnx') })).rejects.toThrow(/no such file/);
    writeFileSync(join(dir, 'junk.onnx'), 'not onnx');
    await expect(fvdCommand({ samples: a, reference: b, i3d: join(dir, 'junk.onnx') })).rejects.toThrow(
      /not a usable ONNX model/,
    );
    // A network with a fixed frame count refuses other clips with a message naming the shape.
    const fixed = writeModel('fixed.onnx', {
      inputs: [{ name: 'video', type: ONNX_FLOAT, shape: ['n', 3, 16, 16, 16] }],
      outputs: [{ name: 'y', type: ONNX_FLOAT, shape: ['n', 3] }],
      nodes: [
        { op: 'GlobalAveragePool', inputs: ['video'], outputs: ['p'] },
        { op: 'Flatten', inputs: ['p'], outputs: ['y'], attributes: { axis: 1 } },
      ],
    });
    await expect(fvdCommand({ samples: a, reference: b, i3d: fixed, i3dSize: 16 })).rejects.toThrow(
      /did not take \[8, 3, 4, 16, 16\]/,
    );
    const one = samplesDir('fvd-one', level(1, 30));
    await expect(fvd(one, a)).rejects.toThrow(/1 clip\(s\) read; FVD statistics need at least 2/);
  });
});

describe('mdm-eval video commands (CLI)', () => {
  const mdmEval = (args: string[]) =>
    spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', 'apps/eval/src/cli.ts', ...args], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  it('fvd prints one JSON line, and refuses bad arguments with one-line messages', () => {
    const a = samplesDir('cli-a', level(3, 40));
    const b = samplesDir('cli-b', level(3, 41));
    const ok = mdmEval(['fvd', '--samples', a, '--reference', b, '--i3d', fakeI3d, '--i3d-size', '8']);
    expect(ok.status, ok.stderr).toBe(0);
    const report = JSON.parse(ok.stdout.trim());
    expect(report).toMatchObject({ n: 3, frames: FRAMES, dim: 3 * FRAMES, reference: { n: 3 } });
    expect(report.fvd).toBeGreaterThan(0);

    const cases: [string[], RegExp][] = [
      [['fvd', '--samples', a, '--reference', b], /--i3d <model\.onnx>.*docs\/evaluation\.md/],
      [['fvd', '--samples', a, '--reference', b, '--i3d', fakeI3d, '--i3d-size', '0'], /--i3d-size must be a positive/],
      [['fvd', '--samples', a, '--i3d', fakeI3d], /required option '--reference <dir>' not specified/],
      [['fvd', '--samples', join(dir, 'nope'), '--reference', b, '--i3d', fakeI3d], /nope: no such file or directory/],
    ];
    for (const [args, message] of cases) {
      const run = mdmEval(args);
      expect(run.status, args.join(' ')).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(message);
      expect(run.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
    }
  }, 120_000);
});
