// Fails when a source line is longer than 120 characters (the formatter wraps code, not comments
// or strings). Run by `pnpm lint`:
//   node tooling/scripts/check-line-length.mjs [--max 120]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const maxIndex = process.argv.indexOf('--max');
const max = maxIndex > 0 ? Number(process.argv[maxIndex + 1]) : 120;
const SOURCE = /\.(ts|tsx|mjs|cjs|js|cc|h|py)$/;

// Tracked and new (not ignored) files, so a file not yet committed is checked too.
const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8' })
  .split('\n')
  .filter((f) => SOURCE.test(f));
const long = [];
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    continue; // deleted in the work tree
  }
  text.split('\n').forEach((line, i) => {
    // Characters, not UTF-16 units: an ᾱ or an emoji counts once.
    const length = [...line].length;
    if (length > max) long.push(`${file}:${i + 1}: ${length} characters`);
  });
}
if (long.length) {
  console.error(long.join('\n'));
  console.error(`${long.length} line${long.length === 1 ? '' : 's'} over ${max} characters`);
  process.exitCode = 1;
} else {
  console.log(`line length: ${files.length} files, no line over ${max} characters`);
}
