import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkTarball } from './check-packages.mjs';
import { allExamples } from './examples.mjs';
import { createProject, ok, packAll, publishedPackages, root, run, userEnv } from './project.js';

// What an npm user who never cloned the repository gets: every published package packed, then
// installed with npm (not pnpm) into an empty project outside the workspace, from the registry
// and the tarballs only. Needs `pnpm build` first; CI runs it after the build (pnpm test:consumer).

const packages = publishedPackages();
const libraries = packages.filter((p) => !p.manifest.bin);
let project: string;
let tarballs: Map<string, string>;
let installLog: string;
const modules = (name: string) => join(project, 'node_modules', name);

beforeAll(() => {
  const started = Date.now();
  tarballs = packAll(join(root, 'tooling', 'consumer', '.tarballs'));
  project = createProject(tarballs);
  // npm 11, the current one (Node 20 ships npm 10: then npm 11 from the registry through npx).
  const local = ok('npm', ['--version'], project, userEnv()).trim();
  const npm = (args: string[]) =>
    Number(local.split('.')[0]) >= 11
      ? ok('npm', args, project, userEnv())
      : ok('npx', ['-y', 'npm@11', ...args], project, userEnv());
  const npmVersion = npm(['--version']).trim().split('\n').pop();
  // `--loglevel http` lists every request npm makes, to check that all go to the registry.
  installLog = npm(['install', '--no-audit', '--no-fund', '--loglevel', 'http']);
  console.log(`[consumer] npm ${npmVersion}: packed and installed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}, 900_000);

afterAll(() => {
  if (project && process.env.MDM_KEEP_CONSUMER !== '1') rmSync(project, { recursive: true, force: true });
});

describe('npm install of the tarballs', () => {
  it('fetches only from the npm registry and installs no optional heavy package', () => {
    const registry = ok('npm', ['config', 'get', 'registry'], project, userEnv()).trim().replace(/\/$/, '');
    const urls = [...installLog.matchAll(/\bhttp fetch \w+ \d+ (\S+)/g)].map((m) => m[1]);
    for (const url of urls) expect(url.startsWith(registry), url).toBe(true);
    // onnxruntime-node's installer downloads CUDA files from outside the registry: never by default.
    expect(existsSync(modules('onnxruntime-node'))).toBe(false);
    expect(existsSync(modules('@tensorflow/tfjs-node-gpu'))).toBe(false);
  });

  it('runs install scripts only where known: the native addon, compiled from its shipped sources', () => {
    const withScripts: string[] = [];
    const visit = (dir: string) => {
      for (const name of readdirSync(dir)) {
        if (name.startsWith('.')) continue;
        const pkgDir = join(dir, name);
        if (name.startsWith('@')) {
          visit(pkgDir);
          continue;
        }
        const manifest = join(pkgDir, 'package.json');
        if (!existsSync(manifest)) continue;
        const scripts = JSON.parse(readFileSync(manifest, 'utf8')).scripts ?? {};
        if (scripts.preinstall || scripts.install || scripts.postinstall) withScripts.push(relative(project, pkgDir));
        if (existsSync(join(pkgDir, 'node_modules'))) visit(join(pkgDir, 'node_modules'));
      }
    };
    visit(join(project, 'node_modules'));
    // sharp takes its prebuilt binary from an @img/sharp-* package on the registry, with no script.
    expect(withScripts).toEqual(['node_modules/@matryoshka-ts/kernels-native']);
    const addon = join(modules('@matryoshka-ts/kernels-native'), 'build', 'Release', 'mdm_native.node');
    const canBuild = run('g++', ['--version'], project).status === 0;
    if (canBuild || process.env.MDM_REQUIRE_NATIVE === '1') expect(existsSync(addon)).toBe(true);
  });
});

describe('every installed package', () => {
  it.each(packages.map((p) => p.name))('%s has its README, LICENSE and npm metadata, and no tests', (name) => {
    const dir = modules(name);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    expect(manifest.private).toBeUndefined();
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toMatch(new RegExp(`^# ${name}\\b`));
    expect(readFileSync(join(dir, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
    expect(manifest.license).toBe('MIT');
    expect(manifest.repository?.url).toMatch(/^git\+https:\/\/github\.com\//);
    expect(manifest.homepage).toMatch(/^https:\/\//);
    expect(manifest.bugs?.url).toMatch(/^https:\/\//);
    expect(manifest.engines?.node).toBe('>=20.9');
    expect(manifest.keywords?.length).toBeGreaterThan(3);
    expect(typeof manifest.sideEffects).toBe('boolean');
    const files: string[] = [];
    const walk = (d: string) => {
      for (const f of readdirSync(d)) {
        if (f === 'node_modules' || f === 'build') continue;
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(relative(dir, p));
      }
    };
    walk(dir);
    expect(files.filter((f) => /\.test\.|test-helpers|(^|\/)src\//.test(f))).toEqual([]);
    // Every export condition resolves to a file in the tarball (no `source` pointing at src/).
    for (const [condition, target] of Object.entries(manifest.exports?.['.'] ?? {})) {
      expect(condition).not.toBe('source');
      expect(existsSync(join(dir, target as string)), `${condition} → ${target}`).toBe(true);
    }
    for (const bin of Object.values((manifest.bin ?? {}) as Record<string, string>))
      expect(existsSync(join(dir, bin))).toBe(true);
  });

  it.each(packages.map((p) => p.name))('%s passes publint (and, a library, arethetypeswrong)', (name) => {
    const pkg = packages.find((p) => p.name === name)!;
    expect(checkTarball(tarballs.get(name)!, { library: !pkg.manifest.bin })).toEqual([]);
  });

  it.each(libraries.map((p) => p.name))('%s: its declarations import only packages it depends on', (name) => {
    const dir = modules(name);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const optional = Object.keys(manifest.peerDependenciesMeta ?? {}).filter(
      (p) => manifest.peerDependenciesMeta[p].optional,
    );
    const declared = new Set(
      [...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})].filter(
        (p) => !optional.includes(p),
      ),
    );
    const dts = readdirSync(join(dir, 'dist')).filter((f) => f.endsWith('.d.ts'));
    expect(dts.length).toBeGreaterThan(0);
    for (const file of dts) {
      const text = readFileSync(join(dir, 'dist', file), 'utf8');
      for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        expect(declared.has(pkg), `${file} imports ${spec}`).toBe(true);
      }
    }
  });
});

describe('the README examples and the types, as an npm user compiles them', () => {
  const examples = allExamples();
  let compiled = false;

  beforeAll(() => {
    const dir = join(project, 'examples');
    mkdirSync(dir, { recursive: true });
    for (const { name, code } of examples) writeFileSync(join(dir, `${name}.mts`), code);
    // Every library imported once, so that all their declarations are checked, not only the ones
    // the examples use.
    writeFileSync(
      join(dir, 'all-packages.mts'),
      `${libraries.map((p, i) => `import * as p${i} from '${p.name}';`).join('\n')}\n` +
        `export const all = [${libraries.map((_, i) => `p${i}`).join(', ')}];\n`,
    );
    const tsconfig = {
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        strict: true,
        skipLibCheck: false,
        // No `types` list, as in most projects: every installed @types package is visible
        // (tfjs-core's own declarations need @types/long's global Long).
        outDir: 'out',
      },
      include: ['examples'],
    };
    writeFileSync(join(project, 'tsconfig.json'), `${JSON.stringify(tsconfig, null, 2)}\n`);
  });

  it('the README holds a library example, and so does every library package', () => {
    const names = examples.map((e) => e.name);
    expect(names).toContain('root-0');
    for (const lib of libraries) expect(names, lib.dir).toContain(`${lib.dir.split('/')[1]}-0`);
  });

  it('tsc under nodenext with skipLibCheck false: no errors', () => {
    const result = run(
      process.execPath,
      [join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'],
      project,
    );
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
    compiled = true;
  }, 300_000);

  it.each(examples.map((e) => e.name))(
    'example %s runs',
    (name) => {
      expect(compiled, 'tsc failed, so there is nothing to run').toBe(true);
      const result = run(process.execPath, [join(project, 'out', `${name}.mjs`)], project, userEnv());
      expect(result.status, result.output).toBe(0);
    },
    300_000,
  );
});

describe('the native addon where install scripts did not run', () => {
  it("'auto' says how to build it, and the command it names builds it", () => {
    const canBuild = run('g++', ['--version'], project).status === 0;
    if (!canBuild && process.env.MDM_REQUIRE_NATIVE !== '1') return; // nothing to build it with
    const pkg = modules('@matryoshka-ts/kernels-native');
    // As after `npm install --ignore-scripts`: the sources are there, the compiled addon is not.
    rmSync(join(pkg, 'build'), { recursive: true, force: true });
    const script = join(project, 'which-backend.mjs');
    writeFileSync(
      script,
      `import { initBackend } from '@matryoshka-ts/backends';\n` +
        `console.log((await initBackend({ backend: 'auto' })).name);\n`,
    );
    const before = ok(process.execPath, [script], project, userEnv());
    expect(before).toMatch(/^wasm$/m);
    expect(before).toContain('not using the native kernels: the native addon was not built');
    const command = /`(npm rebuild @matryoshka-ts\/kernels-native[^`]*)`/.exec(before)?.[1];
    expect(command).toBe('npm rebuild @matryoshka-ts/kernels-native --ignore-scripts=false');
    const [npm, ...args] = command!.split(' ');
    ok(npm, args, project, userEnv());
    const after = ok(process.execPath, [script], project, userEnv());
    expect(after).toMatch(/^native$/m);
    expect(after).not.toContain('not using the native kernels');
  }, 300_000);
});

describe('the commands from node_modules/.bin', () => {
  const bin = (name: string) => join(project, 'node_modules', '.bin', name);

  it('mdm-train info prints the parameter counts of a preset', () => {
    const line = ok(bin('mdm-train'), ['info', '--preset', 'MDM-S64S256'], project, userEnv()).trim().split('\n').pop();
    const info = JSON.parse(line!);
    expect(info.total).toBeGreaterThan(1e8);
  });

  it('mdm-train trains the micro preset, resumes it, and samples from it', () => {
    const out = join(project, 'runs', 'micro');
    const train = (args: string[]) => ok(bin('mdm-train'), ['train', ...args], project, userEnv());
    train(['--preset', 'micro', '--steps', '8', '--out', out, '--seed', '3']);
    const lines = () =>
      readFileSync(join(out, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
    expect(lines().filter((l) => l.step !== undefined && l.loss !== undefined).length).toBeGreaterThanOrEqual(8);
    train(['--resume', out, '--steps', '12']);
    const steps = lines()
      .map((l) => l.step)
      .filter((s) => s !== undefined);
    expect(Math.max(...steps)).toBe(12);
    const grid = join(project, 'grid.png');
    ok(
      bin('mdm-train'),
      ['sample', '--run', out, '--n', '2', '--steps', '2', '--prompt', 'smile', '--out', grid],
      project,
      userEnv(),
    );
    expect([...readFileSync(grid).subarray(0, 8)]).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
  }, 600_000);

  it('mdm-eval frechet gives |Δμ|² between statistics that differ only in the mean', () => {
    // Two .npz files written by the installed metrics package: same covariance, means 3 and 4 apart.
    const script = join(project, 'write-stats.mjs');
    writeFileSync(
      script,
      `import { writeFidStats } from '@matryoshka-ts/metrics';\n` +
        `const d = 3, sigma = new Float64Array(d * d);\n` +
        `for (let i = 0; i < d; i++) sigma[i * d + i] = 1 + i;\n` +
        `writeFidStats('a.npz', { mu: new Float64Array([0, 0, 0]), sigma });\n` +
        `writeFidStats('b.npz', { mu: new Float64Array([3, 4, 0]), sigma });\n`,
    );
    ok(process.execPath, [script], project);
    const line = ok(bin('mdm-eval'), ['frechet', 'a.npz', 'b.npz'], project, userEnv()).trim().split('\n').pop();
    const result = JSON.parse(line!);
    expect(result.dim).toBe(3);
    // Equal covariances: the trace term is exactly 0 in exact arithmetic; float64 leaves ~1e-12.
    expect(result.fid).toBeCloseTo(25, 9);
  });
});
