import { defineConfig } from 'tsup';

/**
 * The build of a library package: ESM + declarations from its entry files (src/index.ts, and the
 * files of any subpath exports, e.g. a browser-safe entry) into dist/.
 * @param {string[]} [entry]
 */
export function libraryConfig(entry = ['src/index.ts']) {
  return defineConfig({
    entry,
    format: ['esm'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
  });
}

/** The build of every library package with one entry, src/index.ts. */
export default libraryConfig();
