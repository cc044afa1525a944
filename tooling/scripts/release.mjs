#!/usr/bin/env node
// `pnpm release`: build every package, check the tarballs (publint, arethetypeswrong), then
// `changeset publish`, which publishes each package whose version is not on the registry yet and
// tags it in git. `pnpm release --dry-run` does all of it without publishing or tagging (pnpm
// publish --dry-run under changesets) and fails unless every published package would go out.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dryRun = process.argv.includes('--dry-run');
const bin = (name) => join(root, 'node_modules', '.bin', name);

function step(title, command, args, env = process.env) {
  console.log(`\n[release] ${title}`);
  const result = spawnSync(command, args, { cwd: root, env, encoding: 'utf8', stdio: ['inherit', 'pipe', 'pipe'] });
  process.stdout.write(result.stdout ?? '');
  process.stderr.write(result.stderr ?? '');
  if (result.status !== 0) {
    const published = title.startsWith('changeset publish')
      ? 'changesets lists above what it published before the failure'
      : 'nothing was published';
    console.error(`[release] ${title} failed (exit ${result.status}); ${published}.`);
    process.exit(1);
  }
  return `${result.stdout}${result.stderr}`;
}

step('build', bin('turbo'), ['run', 'build']);
step('package checks', process.execPath, [join(root, 'tooling', 'consumer', 'src', 'check-packages.mjs')]);

// changesets runs `pnpm publish` (pnpm puts itself on the PATH of the scripts it runs).
const env = { ...process.env };
if (dryRun) env.npm_config_dry_run = 'true';
const output = step(
  dryRun ? 'changeset publish (dry run: nothing is uploaded or tagged)' : 'changeset publish',
  bin('changeset'),
  dryRun ? ['publish', '--no-git-tag'] : ['publish'],
  env,
);

if (dryRun) {
  const { publishedPackages } = await import('../consumer/src/pack.mjs');
  const names = publishedPackages().map((p) => `${p.name}@${p.manifest.version}`);
  const missing = names.filter((n) => !output.includes(n));
  if (missing.length) {
    console.error(`[release] the dry run would not publish: ${missing.join(', ')}`);
    process.exit(1);
  }
  console.log(`\n[release] dry run: all ${names.length} packages would be published (${names.join(', ')})`);
}
