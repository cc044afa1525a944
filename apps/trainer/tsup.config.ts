import { defineConfig } from 'tsup';

// A command only: the library (train, openRun, generate, …) is @matryoshka-ts/pipelines.
export default defineConfig({
  entry: ['src/cli.ts'],
  format: ['esm'],
  sourcemap: true,
  target: 'node20',
  banner: { js: '#!/usr/bin/env node' },
});
