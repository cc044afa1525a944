import { defineConfig } from 'tsup';

/** The build of every library package: ESM + declarations from src/index.ts into dist/. */
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
