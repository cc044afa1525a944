import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';

// oneDNN 2.6's JIT sgemm corrupted the heap when a signal arrived mid-call (reproduced with
// SIGPROF, which `node --cpu-prof` sends ~1,000 times a second), so the addon uses only oneDNN's
// direct JIT convolutions (native/dnnl.cc). This runs every convolution direction, 3×3 and 1×1,
// and the weight reorders in a child process profiled every 50 µs: it must exit cleanly.
const loaded = loadAddon();
const info = loaded.addon?.info();

const child = (addonPath: string) => `
const a = require(${JSON.stringify(addonPath)});
if (a.info().convProvider !== 'onednn') throw new Error('oneDNN is not in use');
// [batch, size, in channels, out channels, kernel]
const shapes = [[8, 16, 32, 32, 3], [8, 32, 16, 16, 3], [4, 16, 64, 32, 1], [2, 32, 3, 8, 3], [2, 31, 8, 16, 3]];
for (let round = 0; round < 40; round++)
  for (const [B, H, C, O, K] of shapes) {
    const p = K === 3 ? 1 : 0, g = [B, H, H, C, K, K, O, 1, 1, 1, 1, p, p, H, H];
    const x = new Float32Array(B * H * H * C).fill(0.5), y = new Float32Array(B * H * H * O),
      w = new Float32Array(K * K * C * O).fill(0.01);
    a.conv2d(x, w, y, g);
    a.conv2dBackpropInput(y, w, x, g);
    a.conv2dBackpropFilter(x, y, w, g);
  }
// Every call went to oneDNN; which ones it ran rather than declined depends on the CPU's kernels.
const { onednnCalls, onednnDeclined } = a.info();
if (onednnCalls + onednnDeclined < 600 || onednnCalls === 0)
  throw new Error('oneDNN ran ' + onednnCalls + ' and declined ' + onednnDeclined);
console.log('ok', onednnCalls);
`;

describe.skipIf(!info?.onednn)('oneDNN under signals', () => {
  it('the convolutions survive `node --cpu-prof` sampling every 50 µs', () => {
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
