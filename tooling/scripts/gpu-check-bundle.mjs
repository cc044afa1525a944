// Bundles the GPU check for a machine without Node's packages (tooling/scripts/gpu-check.sh pack):
// bench/src/gpu-check.ts and the webgpu parity suites (tooling/parity/src/standalone/webgpu.ts,
// with `vitest` replaced by its stand-in) into <out>/app/{gpu-check,parity}.mjs, from the
// workspace's TypeScript sources (the `source` condition), with tfjs and our packages inside.
// What cannot be bundled is laid beside them: the `webgpu` package with Linux x64's dawn.node,
// tfjs-backend-wasm's .wasm files, the native addon at build/Release (where kernels-native looks,
// one folder above the bundle) and, with --fid, onnxruntime-node's Linux x64 binding.
//   node tooling/scripts/gpu-check-bundle.mjs <out> [--fid]
import { cpSync, existsSync, mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(process.argv[2] ?? '');
if (!process.argv[2]) throw new Error('usage: gpu-check-bundle.mjs <out> [--fid]');
const fid = process.argv.includes('--fid');
// esbuild comes with tsup (a root devDependency), so the bundle needs no package of its own.
const fromRoot = createRequire(join(root, 'package.json'));
const esbuild = createRequire(fromRoot.resolve('tsup'))('esbuild');
/** A package's folder as a workspace package that depends on it sees it. */
const packageDir = (name, from) =>
  dirname(createRequire(join(root, from, 'package.json')).resolve(`${name}/package.json`));

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'app'), { recursive: true });

await esbuild.build({
  entryPoints: {
    'gpu-check': join(root, 'bench/src/gpu-check.ts'),
    parity: join(root, 'tooling/parity/src/standalone/webgpu.ts'),
  },
  outdir: join(out, 'app'),
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  conditions: ['source'],
  alias: { vitest: join(root, 'tooling/parity/src/standalone/vitest.ts') },
  // The packages' tsconfig files only extend the shared one (strictness, no emit); none changes
  // how esbuild compiles, and test-utils' cannot resolve its base from where it sits.
  tsconfigRaw: { compilerOptions: { target: 'ES2022' } },
  // Loaded at run time from node_modules beside the bundle (native code), or absent there: the
  // backends' and encoders' optional packages fail to import and are reported as unavailable.
  external: ['webgpu', 'onnxruntime-node', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'sharp'],
  // tfjs's CommonJS builds (tfjs-backend-wasm finds its .wasm through __dirname) in an ES module.
  banner: {
    js: [
      "import { createRequire as __mdmRequire } from 'node:module';",
      "import { dirname as __mdmDirname } from 'node:path';",
      "import { fileURLToPath as __mdmPath } from 'node:url';",
      'const require = __mdmRequire(import.meta.url);',
      'const __filename = __mdmPath(import.meta.url);',
      'const __dirname = __mdmDirname(__filename);',
    ].join('\n'),
  },
  logLevel: 'warning',
  legalComments: 'none',
});

const wasm = join(packageDir('@tensorflow/tfjs-backend-wasm', 'packages/backends'), 'dist');
for (const f of readdirSync(wasm).filter((f) => f.endsWith('.wasm'))) cpSync(join(wasm, f), join(out, 'app', f));

const webgpu = packageDir('webgpu', 'packages/backends');
const dawn = join(out, 'node_modules/webgpu');
mkdirSync(join(dawn, 'dist/linux-x64'), { recursive: true });
for (const f of ['package.json', 'index.js', 'LICENSE.md']) cpSync(join(webgpu, f), join(dawn, f));
cpSync(join(webgpu, 'dist/linux-x64/dawn.node'), join(dawn, 'dist/linux-x64/dawn.node'));

const addon = join(root, 'packages/kernels-native/build/Release/mdm_native.node');
if (existsSync(addon)) cpSync(addon, join(out, 'build/Release/mdm_native.node'));
else console.warn(`[gpu-check] ${addon} is not built: the check's native side will be unavailable`);

if (fid) {
  const ort = packageDir('onnxruntime-node', 'packages/text-encoders');
  const to = join(out, 'node_modules/onnxruntime-node');
  for (const f of ['package.json', 'dist', 'lib'])
    if (existsSync(join(ort, f))) cpSync(join(ort, f), join(to, f), { recursive: true });
  cpSync(join(ort, 'bin/napi-v6/linux/x64'), join(to, 'bin/napi-v6/linux/x64'), { recursive: true });
  // pnpm keeps a package's dependencies beside it (its exports hide onnxruntime-common/package.json).
  const common = realpathSync(join(dirname(realpathSync(ort)), 'onnxruntime-common'));
  cpSync(common, join(out, 'node_modules/onnxruntime-common'), {
    recursive: true,
    filter: (src) => !src.includes(`${common}/node_modules`),
  });
}
writeFileSync(join(out, 'app/package.json'), '{ "type": "module" }\n');
console.log(`[gpu-check] bundled into ${out}`);
