#!/usr/bin/env node
// The package check before a release (and in CI, through the consumer test): publint on every
// tarball, and arethetypeswrong on every library's (the two CLIs export no types). ESM only by
// design, so attw's `esm-only` profile: a require() of our packages is not supported.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { packAll, publishedPackages } from './pack.mjs';

const bin = (name) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));

function tool(name, args) {
  const result = spawnSync(bin(name), args, { encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

/**
 * Problems found in one tarball, as lines (empty when it passes). `library`: also run attw.
 * @param {string} tarball
 * @param {{ library: boolean }} options
 * @returns {string[]}
 */
export function checkTarball(tarball, { library }) {
  const problems = [];
  // --strict turns publint's warnings into errors.
  const publint = tool('publint', ['run', tarball, '--strict']);
  if (publint.status !== 0 || !/All good!/.test(publint.output)) problems.push(`publint:\n${publint.output}`);
  if (library) {
    const attw = tool('attw', [tarball, '--profile', 'esm-only', '--format', 'ascii']);
    if (attw.status !== 0) problems.push(`attw:\n${attw.output}`);
  }
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dest = fileURLToPath(new URL('../.tarballs', import.meta.url));
  const tarballs = packAll(dest);
  let failed = 0;
  for (const pkg of publishedPackages()) {
    const problems = checkTarball(tarballs.get(pkg.name), { library: !pkg.manifest.bin });
    console.log(`${problems.length ? 'FAIL' : 'ok  '} ${pkg.name}`);
    for (const p of problems) console.log(p);
    failed += problems.length ? 1 : 0;
  }
  console.log(`${publishedPackages().length - failed} packages pass publint and attw, ${failed} fail`);
  process.exit(failed ? 1 : 0);
}
