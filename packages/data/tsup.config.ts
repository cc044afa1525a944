import { defineConfig } from 'tsup';
import library from '../../tooling/tsup.library.mjs';

// The shared library build, plus the decode worker as a second entry: DecodePool starts worker
// threads from dist/decode-worker.js, beside the bundle (see stream/decode-pool.ts).
export default defineConfig({
  ...(library as Exclude<typeof library, unknown[]>),
  entry: { index: 'src/index.ts', 'decode-worker': 'src/stream/decode-worker.ts' },
});
