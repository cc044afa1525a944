// The runnable examples of the READMEs: every code block fenced as ```ts example (GitHub
// highlights it as TypeScript and ignores the rest of the info string). The consumer test
// type-checks and runs them against the packed packages; `node tooling/consumer/src/examples.mjs`
// runs them here against the workspace's sources, for writing them.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The READMEs that hold examples: the root one and every published package's. */
export function readmes() {
  const files = [join(root, 'README.md')];
  for (const group of ['packages', 'apps']) {
    for (const name of readdirSync(join(root, group)).sort()) {
      const file = join(root, group, name, 'README.md');
      if (existsSync(file)) files.push(file);
    }
  }
  return files;
}

/**
 * The ```ts example blocks of one README, each named after the README's folder and its index
 * (`root-0`, `nested-unet-0`, …).
 * @returns {{ name: string, code: string }[]}
 */
export function examplesOf(file) {
  const base = dirname(file) === root ? 'root' : dirname(file).split('/').pop();
  const blocks = [];
  const fence = /^```ts example[^\n]*\n([\s\S]*?)^```\s*$/gm;
  for (const m of readFileSync(file, 'utf8').matchAll(fence))
    blocks.push({ name: `${base}-${blocks.length}`, code: m[1] });
  return blocks;
}

/** Every example of every README, in a stable order. */
export function allExamples() {
  return readmes().flatMap(examplesOf);
}

// Run directly: write each example as a .mts file inside this package (so it resolves the
// workspace's packages through their `source` condition) and run it with tsx, one at a time.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const only = process.argv.slice(2);
  const dir = join(root, 'tooling', 'consumer', '.examples');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let failed = 0;
  for (const { name, code } of allExamples()) {
    if (only.length && !only.some((o) => name.startsWith(o))) continue;
    const path = join(dir, `${name}.mts`);
    writeFileSync(path, code);
    const started = Date.now();
    const result = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', path], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (result.status === 0) console.log(`ok   ${name} (${seconds} s)`);
    else {
      failed += 1;
      console.log(`FAIL ${name} (${seconds} s)\n${`${result.stdout}${result.stderr}`.slice(-4000)}`);
    }
  }
  process.exit(failed ? 1 : 0);
}
