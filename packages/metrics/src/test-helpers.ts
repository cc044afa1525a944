/**
 * Test-only helpers (imported by the *.test.ts files; not exported from the package): a seeded
 * generator, Gaussian samples, a tiny CLIP, and a way to run python3 with numpy/scipy as the reference.
 */
import { ONNX_FLOAT, ONNX_INT64, onnxModel, pythonCandidates, seeded } from '@matryoshka-ts/test-utils';
import { bytesToUnicode } from '@matryoshka-ts/text-encoders';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export { seeded };

/** A standard normal sampler (Box–Muller) over a seeded uniform generator. */
export function gaussian(seed: number): () => number {
  const u = seeded(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const t = 2 * Math.PI * u();
    spare = r * Math.sin(t);
    return r * Math.cos(t);
  };
}

/**
 * n samples (rows × d, flat) of a correlated Gaussian: z·A + shift with z standard normal and A a
 * fixed random d×d mixing matrix (scaled by `scale`), so the covariance is AᵀA·scale², full rank
 * when n > d and of rank n − 1 (after centring) when n ≤ d.
 */
export function correlatedSamples(
  seed: number,
  n: number,
  d: number,
  options: { scale?: number; shift?: number } = {},
): Float64Array {
  const g = gaussian(seed);
  const scale = options.scale ?? 1;
  const shift = options.shift ?? 0;
  const a = Float64Array.from({ length: d * d }, () => (g() * scale) / Math.sqrt(d));
  const out = new Float64Array(n * d);
  const z = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) z[i] = g();
    for (let i = 0; i < d; i++) {
      const zi = z[i];
      const row = i * d;
      for (let j = 0; j < d; j++) out[r * d + j] += zi * a[row + j];
    }
    for (let j = 0; j < d; j++) out[r * d + j] += shift + (0.1 * j) / d;
  }
  return out;
}

let chosen = 'python3';

/**
 * Whether a python3 on PATH can import these modules (it is then used by `runPython`); `why` says what is missing
 * when not.
 */
export function pythonWith(modules: string[]): { ok: boolean; why: string } {
  let reason = '';
  for (const python of pythonCandidates()) {
    const probe = spawnSync(python, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8', timeout: 60_000 });
    if (probe.status === 0) {
      chosen = python;
      return { ok: true, why: '' };
    }
    reason ||= probe.error ? probe.error.message : ((probe.stderr || '').trim().split('\n').pop() ?? '');
  }
  return {
    ok: false,
    why:
      `python3 with ${modules.join(' and ')} is not available (${reason}); ` +
      `the reference checks against it are skipped`,
  };
}

/**
 * Runs a python3 script (with the interpreter `pythonWith` found) and arguments; returns its stdout, throwing with its
 * stderr on failure.
 */
export function runPython(script: string, args: string[] = []): string {
  const run = spawnSync(chosen, ['-c', script, ...args], { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`python3 failed (${run.status ?? run.error?.message}):\n${run.stderr}`);
  return run.stdout;
}

/** max |a − b| / max |b|. */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}

/**
 * Writes a tiny CLIP into `dir` in transformers.js's layout: tokenizer files (vocab.json,
 * merges.txt) at the top, towers under onnx/. Text tower: mean over the 77 positions of an
 * embedding table E[ids]. Image tower: per-channel mean of the preprocessed pixels times a 3×D
 * matrix P. Returns the weights, for references computed outside ONNX Runtime.
 */
export function writeTinyClip(dir: string) {
  const D = 3;
  const symbols = bytesToUnicode();
  const vocab: Record<string, number> = {};
  for (const s of symbols) vocab[s] = Object.keys(vocab).length;
  for (const s of symbols) vocab[`${s}</w>`] = Object.keys(vocab).length;
  const merges: Array<[string, string]> = [
    ['c', 'a'],
    ['ca', 't</w>'],
    ['d', 'o'],
    ['do', 'g</w>'],
  ];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  vocab['<|startoftext|>'] = Object.keys(vocab).length;
  vocab['<|endoftext|>'] = Object.keys(vocab).length;
  const V = Object.keys(vocab).length;
  const u = seeded(3);
  const E = Float32Array.from({ length: V * D }, () => u() * 2 - 1);
  const P = Float32Array.from({ length: 3 * D }, () => u() * 2 - 1);
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(join(dir, 'merges.txt'), `#version: 0.2\n${merges.map((m) => m.join(' ')).join('\n')}\n`);
  writeFileSync(
    join(dir, 'onnx', 'text_model.onnx'),
    onnxModel({
      inputs: [
        { name: 'input_ids', type: ONNX_INT64, shape: ['n', 77] },
        { name: 'attention_mask', type: ONNX_INT64, shape: ['n', 77] },
      ],
      outputs: [{ name: 'text_embeds', type: ONNX_FLOAT, shape: ['n', D] }],
      initializers: [{ name: 'E', dims: [V, D], data: E }],
      nodes: [
        { op: 'Gather', inputs: ['E', 'input_ids'], outputs: ['g'], attributes: { axis: 0 } },
        { op: 'ReduceMean', inputs: ['g'], outputs: ['text_embeds'], attributes: { axes: [1], keepdims: 0 } },
      ],
    }),
  );
  writeFileSync(
    join(dir, 'onnx', 'vision_model.onnx'),
    onnxModel({
      inputs: [{ name: 'pixel_values', type: ONNX_FLOAT, shape: ['n', 3, 224, 224] }],
      outputs: [{ name: 'image_embeds', type: ONNX_FLOAT, shape: ['n', D] }],
      initializers: [{ name: 'P', dims: [3, D], data: P }],
      nodes: [
        { op: 'GlobalAveragePool', inputs: ['pixel_values'], outputs: ['p'] },
        { op: 'Flatten', inputs: ['p'], outputs: ['f'], attributes: { axis: 1 } },
        { op: 'MatMul', inputs: ['f', 'P'], outputs: ['image_embeds'] },
      ],
    }),
  );
  return { D, E, P, vocab, merges };
}
