// Packing the published packages as `pnpm publish` would: pnpm turns `workspace:*` into versions
// and applies each package's publishConfig (the exports without the workspace-only `source`).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const root = fileURLToPath(new URL('../../..', import.meta.url));

/** The packages npm users install: every package.json under packages/ and apps/ but the private ones (the web page). */
export function publishedPackages() {
  const found = [];
  for (const group of ['packages', 'apps']) {
    for (const folder of readdirSync(join(root, group)).sort()) {
      const file = join(root, group, folder, 'package.json');
      if (!existsSync(file)) continue;
      const manifest = JSON.parse(readFileSync(file, 'utf8'));
      if (manifest.private) continue;
      found.push({ dir: `${group}/${folder}`, name: manifest.name, manifest });
    }
  }
  return found;
}

/** pnpm's arguments: the pnpm running this script when there is one, else pnpm 9 through npx. */
export function pnpmCommand(args) {
  const execpath = process.env.npm_execpath;
  if (execpath && /pnpm/.test(execpath)) return [process.execPath, [execpath, ...args]];
  return ['npx', ['-y', 'pnpm@9.15.9', ...args]];
}

/** Packs every published package (built first: `pnpm build`) into `dest`; tarballs by name. */
export function packAll(dest) {
  mkdirSync(dest, { recursive: true });
  const tarballs = new Map();
  for (const pkg of publishedPackages()) {
    const cwd = join(root, pkg.dir);
    if (!existsSync(join(cwd, 'dist'))) throw new Error(`${pkg.dir}/dist is missing: run \`pnpm build\` first`);
    const before = new Set(readdirSync(dest));
    const [command, args] = pnpmCommand(['pack', '--pack-destination', dest]);
    const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`pnpm pack in ${pkg.dir} failed:\n${result.stdout}${result.stderr}`);
    const made = readdirSync(dest).filter((f) => !before.has(f) && f.endsWith('.tgz'));
    // The same version packed again overwrites its tarball: then it is the one named after it.
    const name = made[0] ?? `${pkg.name.replace('@', '').replace('/', '-')}-${pkg.manifest.version}.tgz`;
    if (made.length > 1 || !existsSync(join(dest, name))) throw new Error(`pnpm pack in ${pkg.dir} made no tarball`);
    tarballs.set(pkg.name, join(dest, name));
  }
  return tarballs;
}
