// What every family shares: a seeded PRNG, trial outcomes, running a command with a timeout and a
// memory cap, reading a CLI's error, and comparing a run (metrics and checkpoint) with a reference.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '@matryoshka-ts/checkpoint';
import { Rng as CoreRng } from '@matryoshka-ts/core';

/** The monorepo root: the CLIs are run from here, as `pnpm mdm-train` would. */
export const REPO = resolve(fileURLToPath(import.meta.url), '../../../..');

// ---------------------------------------------------------------------------------------------
// The project's seeded generator (core's xoshiro128**), seeded from --seed and a trial's label
// through a string hash, so each trial can be replayed from its label and the seed alone,
// whatever ran before it.

export class Rng extends CoreRng {
  constructor(seed: number, label: string) {
    super(hash(`${seed}/${label}`));
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

/** A 32-bit hash of a string (murmur3's mixing). */
function hash(text: string): number {
  let h = 1779033703;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  h = Math.imul(h ^ (h >>> 16), 2246822507);
  h = Math.imul(h ^ (h >>> 13), 3266489909);
  return (h ^ (h >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Outcomes.

export type Outcome = 'survived' | 'silent' | 'unclear';

export interface Trial {
  outcome: Outcome;
  /** One line that reproduces the trial: seed, mutation or kill time, command, first line of output. */
  detail: string;
  /** A finer bucket within the outcome, counted in the family's notes (e.g. "refused", "identical"). */
  tag?: string;
}

export interface FamilyResult {
  name: string;
  trials: Trial[];
  /** Why the family did not run (counted as 0 trials, not as failures). */
  skipped?: string;
  /** Extra summary lines (tag counts, per-format counts). */
  notes: string[];
}

export interface Context {
  seed: number;
  quick: boolean;
  backend: string;
  /** A fresh temporary folder, removed at the end. */
  root: string;
  rng(label: string): Rng;
  /** Progress on stderr (stdout holds the summary). */
  log(line: string): void;
  /** The uninterrupted reference run of this seed, trained once on first use. */
  reference(): Promise<Reference>;
}

export interface Reference {
  dir: string;
  /** Wall time of the uninterrupted run, for placing kills. */
  ms: number;
  steps: number;
}

/** Counts of each tag, as "12 refused, 3 identical". */
export function tagCounts(trials: Trial[]): string {
  const counts = new Map<string, number>();
  for (const t of trials) if (t.tag) counts.set(t.tag, (counts.get(t.tag) ?? 0) + 1);
  return [...counts].map(([tag, n]) => `${n} ${tag}`).join(', ');
}

export function countLine(trials: Trial[]): string {
  const n = (o: Outcome) => trials.filter((t) => t.outcome === o).length;
  return `trials=${trials.length} survived=${n('survived')} silent=${n('silent')} unclear=${n('unclear')}`;
}

// ---------------------------------------------------------------------------------------------
// Commands.

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Killed by us at `killAfterMs` (the kill family's kill -9). */
  killed: boolean;
  timedOut: boolean;
  /** Killed for passing the memory cap. */
  memoryBlown: boolean;
  peakMb: number;
  /** Shell-style line to rerun it by hand. */
  line: string;
}

export interface CommandOptions {
  timeoutMs: number;
  /** kill -9 after this many ms. */
  killAfterMs?: number;
  /** Arms another trigger for the kill -9 (e.g. a file appearing); returns its disposer. */
  killWhen?: (kill: () => void) => () => void;
  /** Resident memory above which the process is killed (a blow-up, not a slow run). */
  memoryCapMb?: number;
}

const NODE_ARGS = ['--conditions=source', '--import', 'tsx'];
export const trainerCli = (...args: string[]) => [...NODE_ARGS, 'apps/trainer/src/cli.ts', ...args];
export const evalCli = (...args: string[]) => [...NODE_ARGS, 'apps/eval/src/cli.ts', ...args];

/** Total steps of the `micro` preset (3 at 4 px, 100 at 8 px). */
export const STEPS = 103;

/**
 * A fresh micro run: checkpoints every 5 steps, so kills land between and during checkpoint writes
 * (each is ~5 MB, written to a temp file, flushed and renamed).
 */
export function trainArgs(out: string, seed: number, backend: string, ...extra: string[]): string[] {
  return trainerCli(
    'train',
    '--preset',
    'micro',
    '--seed',
    String(seed),
    '--set',
    'checkpointEvery=5',
    '--backend',
    backend,
    '--out',
    out,
    ...extra,
  );
}

/** How a user would type it (`pnpm mdm-train …`), for reproduction lines. */
function shellLine(args: string[]): string {
  const cli = args[3]?.includes('trainer') ? 'pnpm mdm-train' : args[3]?.includes('eval') ? 'pnpm mdm-eval' : 'node';
  const rest = cli === 'node' ? args : args.slice(4);
  return [cli, ...rest.map((a) => (/^[\w./=,:@-]+$/.test(a) ? a : `'${a}'`))].join(' ');
}

/** Runs `node <args>` in the repo root, polling its resident memory; never throws. */
export function runNode(args: string[], options: CommandOptions): Promise<CommandResult> {
  const started = performance.now();
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let killed = false;
  let timedOut = false;
  let memoryBlown = false;
  let peakMb = 0;
  const stop = (why: 'kill' | 'timeout' | 'memory') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (why === 'kill') killed = true;
    else if (why === 'timeout') timedOut = true;
    else memoryBlown = true;
    child.kill('SIGKILL');
  };
  const timers = [setTimeout(() => stop('timeout'), options.timeoutMs)];
  if (options.killAfterMs !== undefined) timers.push(setTimeout(() => stop('kill'), options.killAfterMs));
  const disarm = options.killWhen?.(() => stop('kill'));
  const poll = setInterval(() => {
    const mb = residentMb(child.pid);
    peakMb = Math.max(peakMb, mb);
    if (options.memoryCapMb && mb > options.memoryCapMb) stop('memory');
  }, 200);
  return new Promise((done) => {
    child.on('close', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      clearInterval(poll);
      disarm?.();
      const ms = performance.now() - started;
      done({ code, signal, stdout, stderr, ms, killed, timedOut, memoryBlown, peakMb, line: shellLine(args) });
    });
  });
}

function residentMb(pid: number | undefined): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** Limits for the CLI runs: generous next to a micro run's ~25 s and ~400 MB. */
export const CLI_LIMITS = { timeoutMs: 300_000, memoryCapMb: 3000 };

// ---------------------------------------------------------------------------------------------
// Reading a CLI's failure.

export interface Failure {
  /** 'one-line': `<program>: <message>` and exit 1, no stack; 'internal': the bug report; else anything else. */
  kind: 'one-line' | 'internal' | 'timeout' | 'memory' | 'other';
  line: string;
}

/** What a failed (or killed) command said, reduced to the first line that matters. */
export function failureOf(result: CommandResult, program: string): Failure {
  if (result.timedOut) return { kind: 'timeout', line: `no exit after ${Math.round(result.ms / 1000)} s (killed)` };
  if (result.memoryBlown) return { kind: 'memory', line: `resident memory over ${CLI_LIMITS.memoryCapMb} MB (killed)` };
  const lines = result.stderr.split('\n').filter((l) => l.trim());
  const own = lines.findIndex((l) => l.startsWith(`${program}: `));
  if (own >= 0 && lines[own].includes('internal error'))
    return { kind: 'internal', line: `${lines[own]} ${lines[own + 1] ?? ''}`.trim() };
  const stack = lines.some((l) => /^\s+at /.test(l));
  if (result.code === 1 && own === lines.length - 1 && !stack) return { kind: 'one-line', line: lines[own] };
  const first = lines.find((l) => !l.startsWith('[matryoshka-ts]')) ?? result.stdout.split('\n')[0] ?? '';
  return { kind: 'other', line: `exit ${result.code ?? result.signal}: ${first}` };
}

/** First line worth quoting from a command's output. */
export function firstLine(result: CommandResult, program: string): string {
  if (result.code === 0) return result.stdout.split('\n')[0] ?? '';
  return failureOf(result, program).line;
}

// ---------------------------------------------------------------------------------------------
// Comparing runs.

interface MetricsRow {
  step: number;
  [key: string]: unknown;
}

/** metrics.jsonl rows; throws on an unreadable line (callers decide whether a torn last line is allowed). */
export function readMetrics(dir: string): MetricsRow[] {
  const text = readFileSync(join(dir, 'metrics.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line, i) => {
      try {
        return JSON.parse(line) as MetricsRow;
      } catch {
        throw new Error(`metrics.jsonl line ${i + 1} is not JSON: ${line.slice(0, 60)}`);
      }
    });
}

/** The fields that must match exactly: everything but the timing. */
function comparable(row: MetricsRow): string {
  const { stepsPerSec: _, ...rest } = row;
  return JSON.stringify(rest);
}

/**
 * How a finished run differs from the reference, or undefined when it matches. Tolerance: none.
 * Every metrics row but its speed, every checkpoint tensor bit for bit, and the checkpoint's
 * progress but its wall time must be equal (the training is deterministic on one backend).
 */
export function compareRuns(dir: string, reference: string, fromStep = 0): string | undefined {
  const ours = readMetrics(dir).filter((r) => r.step > fromStep);
  const theirs = readMetrics(reference).filter((r) => r.step > fromStep);
  if (ours.length !== theirs.length) return `metrics.jsonl has ${ours.length} rows, the reference ${theirs.length}`;
  for (let i = 0; i < ours.length; i++) {
    if (comparable(ours[i]) !== comparable(theirs[i])) {
      const loss = (r: MetricsRow) => Number(r.loss).toPrecision(8);
      return `metrics.jsonl step ${ours[i].step}: loss ${loss(ours[i])} vs reference ${loss(theirs[i])}`;
    }
  }
  return compareCheckpoints(join(dir, 'checkpoint.safetensors'), join(reference, 'checkpoint.safetensors'));
}

/** How two training checkpoints differ (tensors, progress without `seconds`), or undefined. */
export function compareCheckpoints(path: string, reference: string): string | undefined {
  const a = SafetensorsFile.open(path);
  const b = SafetensorsFile.open(reference);
  try {
    const progress = (f: SafetensorsFile) => {
      const { seconds: _, ...rest } = JSON.parse(f.metadata.progress ?? '{}');
      return JSON.stringify(rest);
    };
    if (progress(a) !== progress(b)) return `checkpoint progress ${progress(a)} vs reference ${progress(b)}`;
    if (a.metadata.config !== b.metadata.config) return 'checkpoint config differs from the reference';
    const names = a.names.sort().join();
    if (names !== b.names.sort().join()) return 'checkpoint tensor names differ from the reference';
    for (const name of a.names) {
      const x = bytesOf(a.read(name).data);
      const y = bytesOf(b.read(name).data);
      if (Buffer.compare(x, y) !== 0) return `checkpoint tensor ${name} differs from the reference`;
    }
    return undefined;
  } finally {
    a.close();
    b.close();
  }
}

export function bytesOf(data: ArrayBufferView): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Temp files (`*.tmp-<pid>`, `*.tmp`) left in a folder, e.g. by a write that was killed. */
export function leftovers(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /\.tmp(-\d+)?$/.test(f));
}

/** Runs `tasks` with at most `jobs` at a time, results in task order. */
export async function pool<T>(tasks: Array<() => Promise<T>>, jobs: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, worker));
  return results;
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
