// Compiles the addon with node-gyp at install time. A failed build is not an install failure:
// the library then runs on tfjs's own kernels and says why at start-up. `--strict` (the
// `build:native` script) fails loudly instead, for people working on the addon.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const strict = process.argv.includes('--strict');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

if (process.env.MDM_SKIP_NATIVE === '1') {
  console.log('[kernels-native] MDM_SKIP_NATIVE=1: not building the native addon.');
  process.exit(0);
}

/** node-gyp: the one the package manager names, else npm's own copy next to this Node. */
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {}
  const prefix = join(dirname(process.execPath), '..');
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(prefix, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => c && existsSync(c));
}

function fail(message) {
  if (strict) {
    console.error(`[kernels-native] ${message}`);
    process.exit(1);
  }
  console.warn(
    `[kernels-native] warning: ${message}\n[kernels-native] The library will use TensorFlow.js's own kernels (slower).`,
  );
  process.exit(0);
}

const gyp = findNodeGyp();
if (!gyp) fail('node-gyp was not found, so the native addon was not built.');
// Build against the headers that come with this Node when present, so nothing is downloaded.
const prefix = join(dirname(process.execPath), '..');
const args = [gyp, 'rebuild'];
if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const result = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (result.status !== 0) {
  // The compiler's own error lines first: node-gyp's last lines only say that it failed.
  const lines = `${result.stdout ?? ''}\n${result.stderr ?? ''}`.split('\n');
  const errors = lines
    .filter((l) => /error|not found|No such file/i.test(l) && !/^gyp (ERR|info)/.test(l))
    .slice(0, 10);
  fail(
    `building the native addon failed (node-gyp exit ${result.status}):\n${[...errors, ...lines.slice(-5)].join('\n')}`,
  );
}
console.log('[kernels-native] built build/Release/mdm_native.node');
