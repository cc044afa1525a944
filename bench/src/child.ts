import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

/** The repository root (benchmarks run their children from there). */
export const root = resolve(import.meta.dirname, '../..');

/** Node arguments that run a TypeScript file from its sources, as the root scripts do. */
export const tsx = ['--conditions=source', '--import', 'tsx'];

/**
 * Runs a benchmark child and returns the last JSON line it printed, or the message of the error
 * it died with (the `…Error: message` line, not the stack or source excerpt).
 */
export function runJson(cmd: string, args: string[]): Record<string, unknown> | { error: string } {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (r.status === 0 && line) return JSON.parse(line);
  const text = (r.stderr || r.stdout).trim();
  const error = /^\w*Error: (.+)$/m.exec(text)?.[1] ?? text.split('\n').slice(-1)[0] ?? `exit ${r.status}`;
  return { error };
}
