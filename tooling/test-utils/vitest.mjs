import { defineConfig } from 'vitest/config';

/**
 * Vitest settings shared by every package. Workspace packages resolve to their TypeScript
 * sources (the `source` export condition), so tests need no build. Each test file runs in its
 * own forked process: tfjs keeps its backend registry in a process-wide singleton, and the wasm
 * backend does not run inside worker threads.
 */
/** @param {{ testTimeout?: number }} [options] */
export function sharedConfig(options = {}) {
  return defineConfig({
    resolve: { conditions: ['source'] },
    ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
    test: {
      pool: 'forks',
      testTimeout: options.testTimeout ?? 60_000,
      hookTimeout: 120_000,
      reporters: ['default', 'json'],
      outputFile: { json: '.vitest-results/results.json' },
    },
  });
}
