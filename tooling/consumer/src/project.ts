import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export { packAll, publishedPackages, root } from './pack.mjs';

export interface Run {
  status: number | null;
  output: string;
}

/** Runs a command; its stdout and stderr together. */
export function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Run {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

/** Like run, but throws with the output when the command fails. */
export function ok(command: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  const result = run(command, args, cwd, env);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.output}`);
  return result.output;
}

/**
 * The environment of a user's shell: no npm_* variables from the pnpm that runs this test (they
 * would carry the workspace's settings into npm).
 */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_|^PNPM_|^INIT_CWD$/i.test(key)) env[key] = value;
  return { ...env, ...extra };
}

/** An empty npm project outside the workspace that depends on every tarball. */
export function createProject(tarballs: Map<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mdm-consumer-'));
  const dependencies: Record<string, string> = { '@tensorflow/tfjs-core': '4.22.0' };
  for (const [name, tarball] of tarballs) dependencies[name] = `file:${tarball}`;
  const manifest = {
    name: 'mdm-consumer',
    private: true,
    type: 'module',
    dependencies,
    // What a TypeScript user of Node 20 has: the compiler and Node's types.
    devDependencies: { typescript: '5.9.3', '@types/node': '^20.17.0' },
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return dir;
}
