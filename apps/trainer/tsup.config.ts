import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/cli.ts'],
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
  },
  // The library entry (openRun, generate, …) for mdm-eval and scripts.
  { entry: ['src/index.ts'], format: ['esm'], sourcemap: true, dts: true, target: 'node20' },
]);
