#!/usr/bin/env node
// Sums the vitest JSON reports that every package's `test` task wrote and prints the one line CI
// reads: `N passed, N failed`. Exit status: non-zero when any test failed, when turbo itself
// failed (passed in as argv[2]), or when no report exists at all (a run that tested nothing).
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const groups = ['packages', 'apps', 'tooling'];

// `--clean`: remove earlier reports first, so a package whose tests did not run this time
// cannot be counted from a stale report.
if (process.argv[2] === '--clean') {
  for (const group of groups) {
    const dir = join(root, group);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      if (statSync(join(dir, name)).isDirectory())
        rmSync(join(dir, name, '.vitest-results'), { recursive: true, force: true });
    }
  }
  process.exit(0);
}

const turboStatus = Number(process.argv[2] ?? 0);
let passed = 0;
let failed = 0;
let skipped = 0;
let reports = 0;
for (const group of groups) {
  const dir = join(root, group);
  if (!existsSync(dir)) continue;
  for (const name of readdirSync(dir)) {
    const file = join(dir, name, '.vitest-results', 'results.json');
    if (!existsSync(file)) continue;
    const report = JSON.parse(readFileSync(file, 'utf8'));
    reports += 1;
    passed += report.numPassedTests ?? 0;
    failed += report.numFailedTests ?? 0;
    skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
    // A file that failed to load (syntax error, failed import) has no tests but must count.
    for (const suite of report.testResults ?? []) {
      if (suite.status === 'failed' && (suite.assertionResults ?? []).length === 0) failed += 1;
    }
  }
}
// A test run that died (turbo killed, a package's vitest crashed before writing its report) is a
// failure even when every report it left says 0 failed: the line must not read green.
if (turboStatus !== 0 && failed === 0) {
  console.error(`test-summary: the test run exited with status ${turboStatus} but no report counts a failure`);
  failed = 1;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
if (reports === 0) console.error('test-summary: no vitest report was written; did the tests run?');
process.exit(failed > 0 || turboStatus !== 0 || reports === 0 ? 1 : 0);
