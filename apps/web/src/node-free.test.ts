// What the page runs imports no Node module: the static imports of the browser entries (and of
// `core`, whole) followed through the workspace's sources. The page build enforces the same
// (vite.config.ts); this test needs no browser and names the chain that reaches a Node module.
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const builtins = new Set(builtinModules);

/** What a web page may import (whole packages, browser entries), and the page itself. */
const ENTRIES = [
  'packages/core/src/index.ts',
  'packages/schedules/src/index.ts',
  'packages/kernels/src/index.ts',
  'packages/layers/src/index.ts',
  'packages/nested-unet/src/index.ts',
  'packages/samplers/src/index.ts',
  'packages/checkpoint/src/bytes.ts',
  'packages/autoencoder/src/config.ts',
  'packages/text-encoders/src/browser.ts',
  'packages/pipelines/src/browser.ts',
  'apps/web/src/main.ts',
];

/** Module specifiers a file loads at run time (type-only imports and exports are erased). */
function runtimeImports(source: string): string[] {
  // Comments that start a line (a `/*` inside a string, a glob, is not one).
  const text = source.replace(/^\s*\/\*[\s\S]*?\*\//gm, '').replace(/^\s*\/\/.*$/gm, '');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|;|\n)\s*(?:import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]/g))
    if (!m[1]) found.push(m[3]);
  for (const m of text.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) found.push(m[1]);
  for (const m of text.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1]);
  return found;
}

/** A workspace package's source file for `@matryoshka-ts/<name>[/subpath]` (its `source` export). */
function workspaceSource(spec: string): string | undefined {
  const [scope, name, ...rest] = spec.split('/');
  if (scope !== '@matryoshka-ts') return undefined;
  for (const group of ['packages', 'apps']) {
    let manifest: { exports?: Record<string, { source?: string }> };
    try {
      manifest = JSON.parse(readFileSync(join(root, group, name, 'package.json'), 'utf8'));
    } catch {
      continue;
    }
    const entry = manifest.exports?.[rest.length ? `./${rest.join('/')}` : '.'];
    if (!entry?.source) throw new Error(`${spec}: no such export (or one without a source condition)`);
    return join(root, group, name, entry.source);
  }
  throw new Error(`${spec}: no such workspace package`);
}

/** The chains from `entries` to a Node module, and every source file reached. */
function nodeImports(entries: string[]): { problems: string[]; reached: string[] } {
  const from = new Map<string, string | undefined>();
  const queue = entries.map((e) => join(root, e));
  for (const e of queue) from.set(e, undefined);
  const problems: string[] = [];
  const chain = (file: string) => {
    const names: string[] = [];
    for (let f: string | undefined = file; f; f = from.get(f)) names.unshift(relative(root, f));
    return names.join(' → ');
  };
  while (queue.length) {
    const file = queue.shift()!;
    for (const spec of runtimeImports(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('node:') || builtins.has(spec.split('/')[0])) {
        problems.push(`${chain(file)} imports '${spec}'`);
        continue;
      }
      // Third-party packages (tfjs, zod) are not ours to check: workspaceSource gives undefined.
      const target = spec.startsWith('.') ? join(dirname(file), spec.replace(/\.js$/, '.ts')) : workspaceSource(spec);
      if (target?.endsWith('.ts') && !from.has(target)) {
        from.set(target, file);
        queue.push(target);
      }
    }
  }
  return { problems, reached: [...from.keys()].map((f) => relative(root, f)) };
}

it('imports no Node module from what a web page runs (core, the model, the browser entries, the page)', () => {
  const { problems, reached } = nodeImports(ENTRIES);
  expect(problems).toEqual([]);
  // The walk did reach the model, the sampler and the safetensors parser.
  for (const file of [
    'packages/nested-unet/src/nested-unet.ts',
    'packages/samplers/src/sample.ts',
    'packages/checkpoint/src/safetensors-bytes.ts',
    'packages/pipelines/src/generate.ts',
  ])
    expect(reached).toContain(file);
});

it("finds the Node modules of the libraries' main entries (the walk sees them)", () => {
  const { problems } = nodeImports(['packages/checkpoint/src/index.ts', 'packages/pipelines/src/index.ts']);
  expect(problems).toContainEqual(
    "packages/checkpoint/src/index.ts → packages/checkpoint/src/safetensors.ts imports 'node:fs'",
  );
  expect(problems.some((p) => p.endsWith("config-file.ts imports 'node:fs'"))).toBe(true);
});

it('sees through the forms an import takes', () => {
  const source = [
    "import * as tf from '@tensorflow/tfjs-core';",
    "import type { X } from 'node:fs';",
    'import {',
    '  a,',
    '  type B,',
    "} from './a.js';",
    "export { c } from './c.js';",
    "export type { D } from 'node:os';",
    "import './side-effect.js';",
    "const m = await import('node:path');",
    "// import { e } from 'node:zlib';",
  ].join('\n');
  expect(runtimeImports(source).sort()).toEqual(
    ['./a.js', './c.js', './side-effect.js', '@tensorflow/tfjs-core', 'node:path'].sort(),
  );
});
