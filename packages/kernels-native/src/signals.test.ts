import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';

// oneDNN 2.6's JIT sgemm corrupted the heap when a signal arrived mid-call (reproduced with
// SIGPROF, which `node --cpu-prof` sends every 50 µs here), so the addon takes only oneDNN's direct
// JIT and brgemm convolutions (native/dnnl.cc). This runs every convolution direction, 3×3 and
// 1×1, stride 1 and 2, and the weight reorders in a child process profiled every 50 µs, and
// compares each result with the addon's own kernels: it must exit cleanly with every value right.
const loaded = loadAddon();
const info = loaded.addon?.info();

const child = (addonPath: string) => `
const a = require(${JSON.stringify(addonPath)});
if (a.info().convProvider !== 'onednn') throw new Error('oneDNN is not in use');
let seed = 1;
const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5;
const rand = (n) => Float32Array.from({ length: n }, next);
// [batch, size, in channels, out channels, kernel, stride]
const shapes = [[8, 16, 32, 32, 3, 1], [8, 32, 16, 16, 3, 1], [4, 16, 64, 32, 1, 1], [2, 32, 3, 8, 3, 1],
  [2, 31, 8, 16, 3, 1], [4, 32, 16, 32, 3, 2]];
const cases = shapes.map(([B, H, C, O, K, S]) => {
  const p = K === 3 ? 1 : 0, OH = Math.floor((H + 2 * p - K) / S) + 1;
  const g = [B, H, H, C, K, K, O, S, S, 1, 1, p, p, OH, OH];
  const x = rand(B * H * H * C), w = rand(K * K * C * O), dy = rand(B * OH * OH * O);
  const run = () => {
    const out = [new Float32Array(dy.length), new Float32Array(x.length), new Float32Array(w.length)];
    a.conv2d(x, w, out[0], g);
    a.conv2dBackpropInput(dy, w, out[1], g);
    a.conv2dBackpropFilter(x, dy, out[2], g);
    return out;
  };
  a.setConvProvider('builtin');
  const expected = run();
  a.setConvProvider('onednn');
  return { g, run, expected };
});
let worst = 0;
for (let round = 0; round < 40; round++)
  for (const c of cases)
    c.run().forEach((got, d) => {
      // Relative to the largest value: the two sum in different orders (float32, K ≤ 1,152 terms).
      const ref = c.expected[d];
      let err = 0, scale = 0;
      for (let i = 0; i < ref.length; i++)
        (err = Math.max(err, Math.abs(got[i] - ref[i]))), (scale = Math.max(scale, Math.abs(ref[i])));
      if (!(err <= 1e-4 * scale)) throw new Error('direction ' + d + ' of ' + c.g + ' off by ' + err / scale);
      worst = Math.max(worst, err / scale);
    });
// Every call went to oneDNN; which ones it ran rather than declined depends on the CPU's kernels.
const { onednnCalls, onednnDeclined } = a.info();
if (onednnCalls + onednnDeclined < 720 || onednnCalls === 0)
  throw new Error('oneDNN ran ' + onednnCalls + ' and declined ' + onednnDeclined);
console.log('ok', onednnCalls, worst);
`;

describe.skipIf(!info?.onednn)('oneDNN under signals', () => {
  it('the convolutions survive `node --cpu-prof` sampling every 50 µs with every value right', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mdm-signals-'));
    try {
      const r = spawnSync(
        process.execPath,
        [
          '--cpu-prof',
          '--cpu-prof-interval',
          '50',
          '--cpu-prof-dir',
          dir,
          '-e',
          child((loaded as { path: string }).path),
        ],
        { encoding: 'utf8', timeout: 120_000 },
      );
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^ok \d+/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 130_000);
});
