// A stand-in for the part of vitest's API the parity suites use (describe, it, hooks, expect and
// the matchers below), so that the suites run as one plain Node script where vitest is not
// installed: the GPU check (bench/src/gpu-check.ts) bundles them with `vitest` pointing here.
// Tests run in the order they were declared, one at a time; hooks as vitest runs them.
import { deepStrictEqual } from 'node:assert';

type Body = (context: { skip: (reason?: string) => never }) => unknown;
interface Suite {
  name: string;
  skip: boolean;
  beforeAll: Array<() => unknown>;
  afterAll: Array<() => unknown>;
  children: Array<Suite | { name: string; body: Body }>;
}

const newSuite = (name: string, skip = false): Suite => ({ name, skip, beforeAll: [], afterAll: [], children: [] });
const root = newSuite('');
let current = root;

function declare(name: string, body: () => void, skip: boolean): void {
  const suite = newSuite(name, skip);
  current.children.push(suite);
  const parent = current;
  current = suite;
  try {
    body();
  } finally {
    current = parent;
  }
}

export const describe = Object.assign((name: string, body: () => void) => declare(name, body, false), {
  skip: (name: string, body: () => void) => declare(name, body, true),
});
export const it = (name: string, body: Body) => {
  current.children.push({ name, body });
};
export const test = it;
export const beforeAll = (hook: () => unknown) => {
  current.beforeAll.push(hook);
};
export const afterAll = (hook: () => unknown) => {
  current.afterAll.push(hook);
};

class Skipped extends Error {}

function check(ok: boolean, message: string | undefined, what: string): void {
  if (!ok) throw new Error(message ? `${message}: ${what}` : what);
}

/** The matchers the parity suites use, with vitest's meaning. */
export function expect<T>(actual: T, message?: string) {
  const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  return {
    toBe: (expected: T) =>
      check(Object.is(actual, expected), message, `expected ${show(actual)} to be ${show(expected)}`),
    toEqual: (expected: unknown) => {
      try {
        deepStrictEqual(actual, expected);
      } catch (error) {
        check(false, message, (error as Error).message);
      }
    },
    toBeDefined: () => check(actual !== undefined, message, 'expected a value, got undefined'),
    toHaveLength: (n: number) => {
      const length = (actual as { length?: number }).length;
      check(length === n, message, `expected length ${n}, got ${length}`);
    },
    toBeLessThanOrEqual: (n: number) =>
      check((actual as number) <= n, message, `expected ${show(actual)} to be ≤ ${n}`),
    toBeGreaterThan: (n: number) => check((actual as number) > n, message, `expected ${show(actual)} to be > ${n}`),
    toBeGreaterThanOrEqual: (n: number) =>
      check((actual as number) >= n, message, `expected ${show(actual)} to be ≥ ${n}`),
  };
}

/** What `runDeclared` counted. */
export interface RunCounts {
  passed: number;
  failed: number;
  skipped: number;
}

/**
 * Runs every test declared so far, printing a line per test (✓, × with the error, or ↓ skipped)
 * and returning the counts. A failing beforeAll fails the suite's tests; afterAll always runs.
 */
export async function runDeclared(log: (line: string) => void = console.log): Promise<RunCounts> {
  const counts: RunCounts = { passed: 0, failed: 0, skipped: 0 };
  const countTests = (s: Suite): number =>
    s.children.reduce((n, c) => n + ('body' in c ? 1 : countTests(c as Suite)), 0);
  async function run(suite: Suite, path: string[]): Promise<void> {
    const names = suite.name ? [...path, suite.name] : path;
    if (suite.skip) {
      counts.skipped += countTests(suite);
      return;
    }
    let setupError: unknown;
    try {
      for (const hook of suite.beforeAll) await hook();
    } catch (error) {
      setupError = error;
    }
    for (const child of suite.children) {
      if (!('body' in child)) {
        if (setupError) counts.failed += countTests(child);
        else await run(child, names);
        continue;
      }
      const title = [...names, child.name].join(' > ');
      const t0 = performance.now();
      try {
        if (setupError) throw setupError;
        await child.body({
          skip: (reason) => {
            throw new Skipped(reason);
          },
        });
        counts.passed += 1;
        log(`  ✓ ${title} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (error) {
        if (error instanceof Skipped) {
          counts.skipped += 1;
          log(`  ↓ ${title} (skipped: ${error.message})`);
        } else {
          counts.failed += 1;
          log(
            `  × ${title}\n      ${String((error as Error)?.stack ?? error)
              .split('\n')
              .slice(0, 4)
              .join('\n      ')}`,
          );
        }
      }
    }
    for (const hook of suite.afterAll) {
      try {
        await hook();
      } catch (error) {
        counts.failed += 1;
        log(`  × afterAll of ${names.join(' > ')}: ${(error as Error).message}`);
      }
    }
  }
  await run(root, []);
  return counts;
}
