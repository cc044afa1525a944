#!/usr/bin/env node
// The npm metadata every published package carries, kept in one place: repository, homepage,
// bugs, engines, license, keywords, side effects, what the tarball ships and the exports it
// publishes (pnpm's publishConfig drops the workspace-only `source` condition, whose src/ is not
// shipped). `node tooling/scripts/package-metadata.mjs` writes it into every package.json;
// It also copies the root LICENSE into each package (npm ships only the package folder's own).
// `--check` (part of `pnpm lint`) fails when a package.json or LICENSE differs from it.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const REPO = 'https://github.com/matryoshka-ts/matryoshka-ts';
// sharp (in @matryoshka-ts/data) needs 20.9; the workspace itself runs on the same floor.
const ENGINES = { node: '>=20.9' };
const COMMON_KEYWORDS = ['matryoshka-diffusion', 'diffusion', 'mdm', 'tensorflowjs'];
const KEYWORDS = {
  autoencoder: ['autoencoder', 'vae', 'latent-diffusion', 'lpips'],
  backends: ['tfjs-backend', 'wasm', 'webassembly'],
  baselines: ['cascaded-diffusion', 'latent-diffusion', 'noise-augmentation'],
  checkpoint: ['safetensors', 'checkpoint', 'pytorch'],
  core: ['rng', 'errors', 'types'],
  data: ['dataset', 'twemoji', 'imagenet', 'webdataset', 'video'],
  kernels: ['kernels', 'gradients', 'group-norm'],
  'kernels-native': ['n-api', 'native', 'openblas', 'onednn', 'convolution'],
  layers: ['neural-network', 'attention', 'convolution', 'group-norm'],
  losses: ['loss', 'multi-resolution', 'v-prediction'],
  metrics: ['fid', 'frechet-distance', 'clip-score', 'npz'],
  'nested-unet': ['unet', 'nested-unet', 'text-to-image', 'text-to-video'],
  pipelines: ['training', 'sampling', 'text-to-image', 'text-to-video'],
  samplers: ['ddim', 'ddpm', 'classifier-free-guidance', 'sampler'],
  schedules: ['noise-schedule', 'cosine-schedule', 'snr'],
  'text-encoders': ['text-encoder', 'tokenizer', 't5', 'clip', 'onnx'],
  trainer: ['cli', 'training', 'sampling'],
  eval: ['cli', 'fid', 'fvd', 'clip-score', 'evaluation'],
};
// What each tarball ships besides dist/: the addon's C++ sources and build script, compiled at install.
const EXTRA_FILES = { 'kernels-native': ['native', 'binding.gyp', 'scripts'] };
const ORDER = [
  'name',
  'version',
  'description',
  'keywords',
  'license',
  'homepage',
  'bugs',
  'repository',
  'type',
  'sideEffects',
  'bin',
  'exports',
  'main',
  'types',
  'files',
  'engines',
  'scripts',
  'dependencies',
  'peerDependencies',
  'peerDependenciesMeta',
  'optionalDependencies',
  'devDependencies',
  'publishConfig',
];

/** Every package.json under packages/ and apps/ with its folder; the published ones are those not private. */
function workspacePackages() {
  const found = [];
  for (const group of ['packages', 'apps']) {
    for (const name of readdirSync(join(root, group)).sort()) {
      const file = join(root, group, name, 'package.json');
      if (!existsSync(file)) continue;
      const isPrivate = JSON.parse(readFileSync(file, 'utf8')).private === true;
      found.push({ dir: `${group}/${name}`, folder: name, file, isPrivate });
    }
  }
  return found;
}

/** Every published package.json under packages/ and apps/ (a private app, the web page, is not) with its folder. */
export function publishedPackages() {
  return workspacePackages().filter((p) => !p.isPrivate);
}

function expected(pkg, { dir, folder }) {
  const cli = pkg.bin !== undefined;
  const next = {
    ...pkg,
    keywords: [...COMMON_KEYWORDS, ...(KEYWORDS[folder] ?? [])],
    license: 'MIT',
    homepage: `${REPO}/tree/main/${dir}#readme`,
    bugs: { url: `${REPO}/issues` },
    repository: { type: 'git', url: `git+${REPO}.git`, directory: dir },
    sideEffects: cli,
    // npm always ships README and LICENSE; the changelog `changeset version` writes must be named.
    files: ['dist', 'CHANGELOG.md', ...(EXTRA_FILES[folder] ?? [])],
    engines: ENGINES,
    publishConfig: { access: 'public' },
  };
  delete next.private;
  if (!cli) {
    // Every entry (`.` and subpaths such as `./bytes`), without the workspace-only `source`.
    if (!pkg.exports?.['.']) throw new Error(`${dir}: exports['.'] needs types and default`);
    next.publishConfig.exports = {};
    for (const [path, entry] of Object.entries(pkg.exports)) {
      if (!entry?.types || !entry?.default) throw new Error(`${dir}: exports['${path}'] needs types and default`);
      next.publishConfig.exports[path] = { types: entry.types, default: entry.default };
    }
  }
  const ordered = {};
  for (const key of ORDER) if (key in next) ordered[key] = next[key];
  for (const key of Object.keys(next)) if (!(key in ordered)) ordered[key] = next[key];
  return ordered;
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const check = process.argv.includes('--check');
  const license = readFileSync(join(root, 'LICENSE'), 'utf8');
  const stale = [];
  const sync = (file, want) => {
    if (existsSync(file) && readFileSync(file, 'utf8') === want) return;
    if (check) stale.push(file.slice(root.length));
    else writeFileSync(file, want);
  };
  for (const entry of publishedPackages()) {
    const pkg = JSON.parse(readFileSync(entry.file, 'utf8'));
    sync(entry.file, `${JSON.stringify(expected(pkg, entry), null, 2)}\n`);
    sync(join(root, entry.dir, 'LICENSE'), license);
  }
  // Every private workspace package stays out of the release's versioning.
  const ignored = new Set(JSON.parse(readFileSync(join(root, '.changeset', 'config.json'), 'utf8')).ignore);
  for (const app of workspacePackages().filter((p) => p.isPrivate)) {
    const { name } = JSON.parse(readFileSync(app.file, 'utf8'));
    if (!ignored.has(name)) stale.push(`.changeset/config.json: "ignore" lacks ${name}`);
  }
  for (const group of ['tooling', 'bench']) {
    const dirs = group === 'bench' ? [''] : readdirSync(join(root, group));
    for (const name of dirs) {
      const file = join(root, group, name, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8'));
      if (!pkg.private) stale.push(`${group}/${name}: a workspace-only package must be private`);
      else if (!ignored.has(pkg.name)) stale.push(`.changeset/config.json: "ignore" lacks ${pkg.name}`);
    }
  }
  if (stale.length) {
    console.error(`package metadata:\n  ${stale.join('\n  ')}`);
    console.error('(a package.json or LICENSE listed: `node tooling/scripts/package-metadata.mjs` rewrites them)');
    process.exit(1);
  }
}
