import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';

// The addon's kernels split their work over persistent worker threads (native/pool.cc). These
// drive that pool the ways a user can: from several JavaScript threads at once (a second caller
// gets threads of its own) and under `node --cpu-prof`'s signals, and check every result against
// one computed alone. The split is the same either way, so results must be equal to the bit.
const loaded = loadAddon();

// Runs in the test process, in worker threads and in a child: the kernels that use the pool,
// each at a size over its threading threshold, and a digest of their outputs.
const kernels = (addonPath: string) => `
const a = require(${JSON.stringify(addonPath)});
a.setProvider('builtin');
a.setConvProvider('builtin');
let seed = 7;
const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5;
const rand = (n) => Float32Array.from({ length: n }, next);
const [M, N, K] = [96, 128, 256];  // 6.3 MFLOP: over the builtin sgemm's 4 MFLOP threshold
const A = rand(M * K), B = rand(K * N);
const [b, p, c] = [8, 1024, 16];  // over GroupNorm's 65,536 values
const x = rand(b * p * c), gamma = rand(c), beta = rand(c), mod = rand(b * 2 * c);
const geo = [8, 16, 16, 16, 3, 3, 16, 1, 1, 1, 1, 1, 1, 16, 16];  // a direct 16 → 16 convolution
const cx = rand(8 * 16 * 16 * 16), w = rand(9 * 16 * 16), dy = rand(8 * 16 * 16 * 16);
const runAll = () => {
  const out = [new Float32Array(M * N), new Float32Array(x.length), new Float32Array(x.length),
    new Float32Array(c), new Float32Array(c), new Float32Array(b * 2 * c), new Float32Array(dy.length),
    new Float32Array(w.length)];
  a.gemm(false, false, M, N, K, A, B, out[0]);
  const shape = [b, p, c, 4, 1e-5, 1, 2 * c];
  a.groupNormAct(x, gamma, beta, mod, mod.subarray(c), out[1], shape);
  a.groupNormActGrad(out[1], x, gamma, beta, mod, mod.subarray(c), out[2], out[3], out[4], out[5],
    out[5].subarray(c), shape);
  a.conv2d(cx, w, out[6], geo);
  a.conv2dBackpropFilter(cx, dy, out[7], geo);
  return out;
};
const same = (u, v) => u.every((t, i) => t.length === v[i].length && t.every((e, j) => Object.is(e, v[i][j])));
// Within 1e-5 of each output's largest value: the filter gradient's per-thread partial sums add
// in a different order from one thread's (float32, 2,048 terms); the rest is the same arithmetic.
const close = (u, v) => u.every((t, i) => {
  let err = 0, scale = 0;
  for (let j = 0; j < t.length; j++) {
    err = Math.max(err, Math.abs(t[j] - v[i][j]));
    scale = Math.max(scale, Math.abs(v[i][j]));
  }
  return err <= 1e-5 * scale;
});
// Three threads, so that the pool runs two workers even on a 2-core machine.
a.setThreads(3);
`;

describe.skipIf(!loaded.addon)('the worker pool', () => {
  const path = (loaded as { path: string }).path;

  it('gives every caller the same results when JavaScript threads call it at once', async () => {
    // The workers and this thread each run the kernels 40 times, alone first (the reference),
    // then all together; each reports how many concurrent runs matched its own reference.
    const body = `${kernels(path)}
const { parentPort, workerData } = require('node:worker_threads');
const ref = runAll();
Atomics.add(workerData.ready, 0, 1);
while (Atomics.load(workerData.ready, 0) < workerData.threads) {}
let matched = 0;
for (let i = 0; i < 40; i++) if (same(runAll(), ref)) matched++;
parentPort.postMessage(matched);`;
    const ready = new Int32Array(new SharedArrayBuffer(4));
    const threads = 3;
    const workers = Array.from(
      { length: threads },
      () => new Worker(body, { eval: true, workerData: { ready, threads } }),
    );
    const matched = await Promise.all(
      workers.map(
        (w) =>
          new Promise<number>((resolve, reject) => {
            w.once('message', resolve);
            w.once('error', reject);
          }),
      ),
    );
    await Promise.all(workers.map((w) => w.terminate()));
    expect(matched).toEqual([40, 40, 40]);
  });

  it('gives the same results under `node --cpu-prof` sampling every 50 µs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mdm-pool-'));
    try {
      // The reference runs on one thread, without the pool; every pooled run must be close to
      // it and equal to the first pooled run.
      const script = `${kernels(path)}
a.setThreads(1);
const serial = runAll();
a.setThreads(3);
const ref = runAll();
let matched = 0;
for (let i = 0; i < 200; i++) if (same(runAll(), ref)) matched++;
console.log(close(ref, serial) ? 'close' : 'far', 'matched', matched);`;
      const r = spawnSync(
        process.execPath,
        ['--cpu-prof', '--cpu-prof-interval', '50', '--cpu-prof-dir', dir, '-e', script],
        { encoding: 'utf8', timeout: 120_000 },
      );
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout.trim()).toBe('close matched 200');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
