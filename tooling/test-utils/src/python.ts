import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Every python3 to try as a test reference: each one on PATH, then Debian's. npm, pnpm and turbo
 * put Node's own directory (often /usr/bin) first, which can hide the interpreter that has the
 * modules (a pyenv shim, a virtualenv) — and Debian's may have packages a pyenv one lacks.
 */
export function pythonCandidates(): string[] {
  const onPath = (process.env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((d) => join(d, 'python3'));
  return [...new Set([...onPath, '/usr/bin/python3'])].filter((p) => existsSync(p));
}

/** The first python3 that imports all `modules`, or undefined (tests then skip with a reason). */
export function findPython(modules: string[]): string | undefined {
  return pythonCandidates().find(
    (python) =>
      spawnSync(python, ['-c', `import ${modules.join(', ')}`], { stdio: 'ignore', timeout: 60_000 }).status === 0,
  );
}
