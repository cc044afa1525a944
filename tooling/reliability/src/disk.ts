// Family `disk`: train into a small tmpfs whose free space runs out at a seeded point (the first
// checkpoint, the second, the metrics or a later checkpoint, the last small files). The run must stop
// with one line naming the file and ENOSPC, its last checkpoint must load, metrics.jsonl must stay
// readable (a torn last line only if --resume sets it aside with a note), and once space is freed
// --resume must finish with the reference's losses and weights.
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '@matryoshka-ts/checkpoint';
import {
  CLI_LIMITS,
  type Context,
  type FamilyResult,
  type Reference,
  type Trial,
  compareRuns,
  failureOf,
  leftovers,
  runNode,
  seconds,
  tagCounts,
  trainArgs,
  trainerCli,
} from './shared.js';

const mounted = new Set<string>();

/** Unmounts whatever this family left mounted (also called from main on exit and Ctrl-C). */
export function unmountAll(): void {
  for (const dir of mounted) {
    try {
      execFileSync('umount', [dir], { stdio: 'ignore' });
    } catch {
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' }); // busy: detach now, free when unused
      } catch {
        /* already unmounted */
      }
    }
    mounted.delete(dir);
  }
}

const PAGE = 4096;
const SCENARIOS = ['filled mid-run', 'second checkpoint', 'a later checkpoint', 'first checkpoint'] as const;

export async function diskFamily(ctx: Context): Promise<FamilyResult> {
  const skip = (why: string): FamilyResult => ({ name: 'disk', trials: [], skipped: why, notes: [] });
  if (process.getuid?.() !== 0) return skip('not root: cannot mount a tmpfs');
  const probe = join(ctx.root, 'disk-probe');
  try {
    mountTmpfs(probe, 1 << 20);
  } catch (error) {
    return skip(`mount -t tmpfs failed: ${(error as Error).message.split('\n')[0]}`);
  } finally {
    unmountAll();
  }
  const ref = await ctx.reference();
  const checkpointBytes = statSync(join(ref.dir, 'checkpoint.safetensors')).size;
  const trials: Trial[] = [];
  const count = ctx.quick ? 2 : 10;
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    let trial: Trial;
    try {
      trial = await diskTrial(ctx, ref, i, checkpointBytes);
    } finally {
      unmountAll();
    }
    ctx.log(`disk ${i + 1}/${count}: ${trial.outcome} in ${seconds(performance.now() - started)}: ${trial.detail}`);
    trials.push(trial);
  }
  return { name: 'disk', trials, notes: [`where the disk filled: ${tagCounts(trials)}`] };
}

function mountTmpfs(dir: string, bytes: number): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  mounted.add(dir);
}

async function diskTrial(ctx: Context, ref: Reference, i: number, checkpoint: number): Promise<Trial> {
  const rng = ctx.rng(`disk/${i}`);
  const scenario = SCENARIOS[i % SCENARIOS.length];
  // Free pages when training starts. Writing checkpoint k > 1 needs room for the old file and the
  // new temp file together, so with a fixed free space the disk always fills inside a checkpoint
  // write; to fill it elsewhere (metrics.jsonl, loss.svg, samples) another writer takes all the
  // space left at a random moment of the run, as a download or a log filling the same disk would.
  const pages = Math.ceil(checkpoint / PAGE);
  const size = (2 * pages + 256) * PAGE;
  const freePages =
    scenario === 'first checkpoint'
      ? Math.round(pages * (0.2 + 0.75 * rng.uniform()))
      : scenario === 'second checkpoint'
        ? Math.round(pages * (1.05 + 0.9 * rng.uniform()))
        : scenario === 'a later checkpoint'
          ? 2 * pages + 2 + rng.int(4)
          : size / PAGE;
  // Filled at a random moment, or just before metrics.jsonl needs its next page (so that the
  // append fails, maybe after writing part of its line).
  const midRun = scenario === 'filled mid-run' ? (rng.uniform() < 0.5 ? 'time' : 'metrics') : undefined;
  const fillAt = midRun === 'time' ? Math.round(ref.ms * (0.1 + 0.7 * rng.uniform())) : undefined;
  const fillAtPage = midRun === 'metrics' ? 1 + rng.int(4) : undefined;
  const free = freePages * PAGE;
  const mnt = join(ctx.root, `disk-${i}`);
  mountTmpfs(mnt, size);
  const filler = join(mnt, 'filler');
  writeFileSync(filler, Buffer.alloc(size - free));
  const dir = join(mnt, 'run');
  const how = fillAt
    ? `filled up at ${seconds(fillAt)}`
    : fillAtPage
      ? `filled up before metrics.jsonl page ${fillAtPage + 1}`
      : `${free} free`;
  const id = `disk#${i} seed=${ctx.seed}: tmpfs of ${size} bytes, ${how} (${scenario})`;
  const story: string[] = [];
  const done = (outcome: Trial['outcome'], why: string, tag: string = scenario): Trial => ({
    outcome,
    detail: `${id}: ${[...story, why].join('; ')}`,
    tag,
  });

  const timer = fillAt === undefined ? undefined : setTimeout(() => fillUp(filler), fillAt);
  const watcher =
    fillAtPage === undefined
      ? undefined
      : setInterval(() => {
          // A metrics row is ~180 bytes: this close to the page's end, the next one starts a new page.
          const size = existsSync(join(dir, 'metrics.jsonl')) ? statSync(join(dir, 'metrics.jsonl')).size : 0;
          if (Math.floor(size / PAGE) === fillAtPage - 1 && size % PAGE >= PAGE - 170) {
            clearInterval(watcher);
            fillUp(filler);
          }
        }, 5);
  const first = await runNode(trainArgs(dir, ctx.seed, ctx.backend), CLI_LIMITS);
  clearTimeout(timer);
  clearInterval(watcher);
  if (first.code === 0) {
    const diff = compareRuns(dir, ref.dir);
    return diff ? done('silent', `the run fit, but ${diff}`) : done('survived', 'the run fit', 'fit');
  }
  const failure = failureOf(first, 'mdm-train');
  const where = lastStep(dir);
  story.push(`stopped at step ${where.step}: ${failure.line}`);
  if (failure.kind !== 'one-line') return done('unclear', `\`${first.line}\` did not fail with one line`);
  if (!/ENOSPC/.test(failure.line) || !failure.line.includes(mnt))
    return done('unclear', 'the message does not name the file and ENOSPC');

  // The state left on the full disk.
  const checkpointPath = join(dir, 'checkpoint.safetensors');
  if (existsSync(checkpointPath)) {
    try {
      readSafetensors(checkpointPath);
    } catch (error) {
      return done('unclear', `the last checkpoint does not load: ${(error as Error).message}`);
    }
  }
  if (where.badLine) return done('unclear', `metrics.jsonl line ${where.badLine} (not the last) is unreadable`);
  const left = leftovers(dir);
  if (left.length) story.push(`temp files left: ${left.join(', ')}`);

  // Free the space (the user deletes something) and continue.
  unlinkSync(filler);
  let args = trainerCli('train', '--resume', dir, '--backend', ctx.backend);
  if (!existsSync(checkpointPath)) {
    const refused = await runNode(args, CLI_LIMITS);
    const why = failureOf(refused, 'mdm-train');
    if (why.kind !== 'one-line' || !why.line.includes(checkpointPath))
      return done('unclear', `--resume without a checkpoint: ${why.line}`);
    story.push('--resume refused (no checkpoint yet), restarted with --force');
    args = trainArgs(dir, ctx.seed, ctx.backend, '--force');
  }
  const resumed = await runNode(args, CLI_LIMITS);
  if (resumed.code !== 0)
    return done('unclear', `\`${resumed.line}\` after freeing space: ${failureOf(resumed, 'mdm-train').line}`);
  if (where.torn) {
    const noted = /torn/.test(resumed.stderr) && existsSync(join(dir, 'metrics.jsonl.torn'));
    if (!noted) return done('unclear', 'metrics.jsonl had a torn last line and --resume did not set it aside');
    story.push('torn last metrics line set aside by --resume');
  }
  const diff = compareRuns(dir, ref.dir);
  if (diff) return done('silent', `resumed after freeing space, but ${diff}`);
  return done('survived', 'resumed after freeing space; equals the reference');
}

/** Appends to `path` until the disk is full. */
function fillUp(path: string): void {
  const fd = openSync(path, 'a');
  const chunk = Buffer.alloc(1 << 16);
  try {
    for (;;) writeSync(fd, chunk);
  } catch {
    /* ENOSPC: full, as intended */
  } finally {
    closeSync(fd);
  }
}

/** The last logged step; whether the last line is torn; the first unreadable line before it. */
function lastStep(dir: string): { step: number; torn: boolean; badLine?: number } {
  const path = join(dir, 'metrics.jsonl');
  if (!existsSync(path)) return { step: 0, torn: false };
  const lines = readFileSync(path, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  let step = 0;
  let torn = false;
  let badLine: number | undefined;
  lines.forEach((line, i) => {
    try {
      step = JSON.parse(line).step;
    } catch {
      if (i === lines.length - 1) torn = true;
      else badLine ??= i + 1;
    }
  });
  return { step, torn, badLine };
}
