import { builtinModules } from 'node:module';
import { type Plugin, defaultClientConditions, defineConfig } from 'vite';

const builtins = new Set(builtinModules);

/**
 * Fails the build when the page or a workspace package it imports reaches a Node module
 * (`node:fs`, `os`, …): the libraries' browser entries must not. Third-party code in
 * node_modules (tfjs's wasm loader guards its own) is left to its `browser` fields.
 */
function nodeFree(): Plugin {
  return {
    name: 'mdm-node-free',
    enforce: 'pre',
    resolveId(id, importer) {
      if (!importer || importer.includes('/node_modules/')) return null;
      if (id.startsWith('node:') || builtins.has(id.split('/')[0]))
        this.error(`${importer} imports the Node module '${id}': code the page runs must not import Node modules`);
      return null;
    },
  };
}

export default defineConfig({
  // Relative URLs: the built page works from any folder of any static server.
  base: './',
  resolve: {
    // Workspace packages from their TypeScript sources (no build needed), one tfjs-core.
    conditions: ['source', ...defaultClientConditions],
    dedupe: ['@tensorflow/tfjs-core'],
  },
  plugins: [nodeFree()],
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
});
