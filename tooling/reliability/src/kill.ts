// Family `kill`: `kill -9` a micro training run at seeded random moments (startup, between steps,
// inside a checkpoint write), `--resume` it to the end, and require the final metrics and
// checkpoint to equal an uninterrupted run's exactly. The same for `mdm-eval generate`, resumed by
// rerunning it: its files must equal an uninterrupted generation's byte for byte. And the guard
// the restarts rely on: a run folder is never overwritten without --force.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, watch } from 'node:fs';
import { join, relative } from 'node:path';
import { SafetensorsFile, readSafetensors } from '@matryoshka-ts/checkpoint';
import {
  CLI_LIMITS,
  type CommandOptions,
  type CommandResult,
  type Context,
  type FamilyResult,
  type Reference,
  type Rng,
  STEPS,
  type Trial,
  compareRuns,
  evalCli,
  failureOf,
  leftovers,
  runNode,
  seconds,
  tagCounts,
  trainArgs,
  trainerCli,
} from './shared.js';

export async function killFamily(ctx: Context): Promise<FamilyResult> {
  const ref = await ctx.reference();
  const trials: Trial[] = [];
  const runs = ctx.quick ? 2 : 20;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const trial = await trainKillTrial(ctx, ref, i);
    ctx.log(`kill ${i + 1}/${runs}: ${trial.outcome} in ${seconds(performance.now() - started)}: ${trial.detail}`);
    trials.push(trial);
  }
  trials.push(await overwriteTrial(ctx, ref));
  const generations = ctx.quick ? 1 : 2;
  const genTrials = await generateKillTrials(ctx, ref, generations);
  trials.push(...genTrials);
  const notes = [`where the kills landed, and the other checks: ${tagCounts(trials)}`];
  return { name: 'kill', trials, notes };
}

// ---------------------------------------------------------------------------------------------
// mdm-train train

/** One trial: one or two kills, each followed by a resume (the last one left to finish). */
async function trainKillTrial(ctx: Context, ref: Reference, i: number): Promise<Trial> {
  const rng = ctx.rng(`kill/${i}`);
  const dir = join(ctx.root, `kill-${i}`);
  const kills = rng.uniform() < 0.3 ? 2 : 1;
  const story: string[] = [];
  const landed = new Set<string>();
  const id = `kill#${i} seed=${ctx.seed}`;
  for (let k = 0; k <= kills; k++) {
    const kill = k < kills ? planKill(rng, ref, dir) : undefined;
    const { result, command } = await advance(ctx, dir, kill, story);
    if (result.killed) {
      const where = inspectKilled(dir);
      landed.add(where.tag);
      story.push(`kill -9 ${kill!.text} (${where.text})`);
      const broken = checkpointReadable(dir);
      if (broken) return { outcome: 'unclear', detail: `${id}: ${story.join('; ')}; then ${broken}`, tag: where.tag };
      continue;
    }
    if (result.code !== 0) {
      // A refused or crashed resume: the killed run cannot be continued (not silent: nothing accepted).
      const failure = failureOf(result, 'mdm-train');
      const what = `${story.join('; ')}; \`${command}\` → ${failure.kind}: ${failure.line}`;
      return { outcome: 'unclear', detail: `${id}: ${what}`, tag: [...landed].join(' + ') || 'no kill' };
    }
    if (kill) {
      story.push(`run ended before the kill ${kill.text}`);
      landed.add('after the end');
      break;
    }
  }
  const diff = compareRuns(dir, ref.dir);
  const tag = [...landed].join(' + ');
  // Temp files of killed writes are removed by the next successful write of the same file.
  const left = leftovers(dir);
  if (left.length) story.push(`temp files left after the resume: ${left.join(', ')}`);
  if (diff) return { outcome: 'silent', detail: `${id}: ${story.join('; ')}; resumed to the end, but ${diff}`, tag };
  return { outcome: 'survived', detail: `${id}: ${story.join('; ')}; resumed run equals the reference`, tag };
}

interface Kill {
  text: string;
  options: Pick<CommandOptions, 'killAfterMs' | 'killWhen'>;
}

/**
 * When to kill: half the time at a random moment of what is left of the run (from startup on); half
 * the time a random 0-40 ms after one of its remaining checkpoint writes begins (its temp file
 * appears), to land inside writes: a few tens of ms each, too rare a target for random times alone.
 */
function planKill(rng: Rng, ref: Reference, dir: string): Kill {
  const from = checkpointStep(dir);
  if (rng.uniform() < 0.5) {
    const ms = Math.round(300 + rng.uniform() * ref.ms * Math.max(0.25, 1 - from / STEPS));
    return { text: `at ${seconds(ms)}`, options: { killAfterMs: ms } };
  }
  // Every 5th step, and once more at the end.
  const writes = Math.floor(STEPS / 5) - Math.floor(from / 5) + 1;
  const nth = 1 + rng.int(writes);
  const delay = rng.int(40);
  const killWhen = (kill: () => void) => {
    mkdirSync(dir, { recursive: true }); // an empty folder is not a run: a fresh run accepts it
    let seen = 0;
    const watcher = watch(dir, (event, name) => {
      // 'rename' with the file present: the temp file was just created (it is renamed away after).
      const file = String(name ?? '');
      if (event !== 'rename' || !file.startsWith('checkpoint.safetensors.tmp-')) return;
      if (existsSync(join(dir, file)) && ++seen === nth) setTimeout(kill, delay);
    });
    return () => watcher.close();
  };
  return { text: `${delay} ms after checkpoint write ${nth} of ${writes} began`, options: { killWhen } };
}

/** The step of the run's checkpoint (where a resume starts), 0 without one. */
function checkpointStep(dir: string): number {
  try {
    const file = SafetensorsFile.open(join(dir, 'checkpoint.safetensors'));
    file.close();
    return JSON.parse(file.metadata.progress).step;
  } catch {
    return 0;
  }
}

/** Starts or continues the run in `dir` as a user would, killing it as `kill` says. */
async function advance(
  ctx: Context,
  dir: string,
  kill: Kill | undefined,
  story: string[],
): Promise<{ result: CommandResult; command: string }> {
  const checkpoint = join(dir, 'checkpoint.safetensors');
  const started = existsSync(join(dir, 'metrics.jsonl')) || existsSync(checkpoint);
  let args: string[];
  if (started && !existsSync(checkpoint)) {
    // Killed before its first checkpoint: --resume must say so in one line naming the file; the
    // user then starts over with --force (the old folder is moved aside).
    const refused = await runNode(trainerCli('train', '--resume', dir, '--backend', ctx.backend), CLI_LIMITS);
    const failure = failureOf(refused, 'mdm-train');
    if (refused.code === 0 || failure.kind !== 'one-line' || !failure.line.includes(checkpoint))
      return { result: { ...refused, code: refused.code === 0 ? 3 : refused.code }, command: refused.line };
    story.push('--resume refused (no checkpoint yet), restarted with --force');
    args = trainArgs(dir, ctx.seed, ctx.backend, '--force');
  } else if (started) {
    args = trainerCli('train', '--resume', dir, '--backend', ctx.backend);
  } else {
    args = trainArgs(dir, ctx.seed, ctx.backend);
  }
  const result = await runNode(args, { ...CLI_LIMITS, ...kill?.options });
  return { result, command: result.line };
}

/** Where a kill landed: inside a checkpoint write (its temp file exists), or at which logged step. */
function inspectKilled(dir: string): { tag: string; text: string } {
  const midWrite = leftovers(dir).some((f) => f.startsWith('checkpoint.safetensors.tmp'));
  let step = 0;
  if (existsSync(join(dir, 'metrics.jsonl'))) {
    for (const line of readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n')) {
      try {
        step = Math.max(step, JSON.parse(line).step ?? 0);
      } catch {
        /* a torn last line: the resume sets it aside */
      }
    }
  }
  const hasCheckpoint = existsSync(join(dir, 'checkpoint.safetensors'));
  const tag = midWrite
    ? 'mid-checkpoint-write'
    : !hasCheckpoint
      ? 'before the first checkpoint'
      : 'between checkpoints';
  return { tag, text: `${tag}, metrics at step ${step}` };
}

/** The last good checkpoint must survive any kill: it must load in full (undefined) or the failure. */
function checkpointReadable(dir: string): string | undefined {
  const path = join(dir, 'checkpoint.safetensors');
  if (!existsSync(path)) return undefined;
  try {
    readSafetensors(path);
    return undefined;
  } catch (error) {
    return `the checkpoint left by the kill does not load: ${(error as Error).message}`;
  }
}

/**
 * The guard the `--force` restarts above rely on: a fresh run into a folder holding a run is
 * refused in one line (naming --force), the old run untouched; with --force it is moved aside intact.
 */
async function overwriteTrial(ctx: Context, ref: Reference): Promise<Trial> {
  const dir = join(ctx.root, 'overwrite');
  cpSync(ref.dir, dir, { recursive: true });
  const checkpoint = join(dir, 'checkpoint.safetensors');
  const before = readFileSync(checkpoint);
  const id = `overwrite#0 seed=${ctx.seed}: a fresh run into a folder holding a run`;
  const trial = (outcome: Trial['outcome'], what: string): Trial => {
    ctx.log(`overwrite: ${outcome}: ${what}`);
    return { outcome, detail: `${id}: ${what}`, tag: 'overwrite guard' };
  };
  const refused = await runNode(trainArgs(dir, ctx.seed, ctx.backend, '--steps', '1'), CLI_LIMITS);
  const failure = failureOf(refused, 'mdm-train');
  if (refused.code === 0) return trial('silent', `\`${refused.line}\` was accepted without --force`);
  if (failure.kind !== 'one-line' || !failure.line.includes('--force'))
    return trial('unclear', `\`${refused.line}\` → ${failure.kind}: ${failure.line}`);
  if (!readFileSync(checkpoint).equals(before)) return trial('silent', 'refused, but the old checkpoint changed');
  const forced = await runNode(trainArgs(dir, ctx.seed, ctx.backend, '--steps', '1', '--force'), CLI_LIMITS);
  if (forced.code !== 0) return trial('unclear', `\`${forced.line}\` → ${failureOf(forced, 'mdm-train').line}`);
  const aside = readdirSync(ctx.root).find((name) => name.startsWith('overwrite.replaced-'));
  if (!aside || !readFileSync(join(ctx.root, aside, 'checkpoint.safetensors')).equals(before))
    return trial('silent', `with --force the old run was not kept intact (${aside ?? 'not moved aside'})`);
  return trial('survived', `refused without --force (${failure.line}); --force moved it to ${aside}, intact`);
}

// ---------------------------------------------------------------------------------------------
// mdm-eval generate

const GENERATED = 48;
const GENERATE = ['--n', String(GENERATED), '--batch', '4', '--steps', '16'];

async function generateKillTrials(ctx: Context, ref: Reference, count: number): Promise<Trial[]> {
  const full = join(ctx.root, 'generate-reference');
  const uninterrupted = await runNode(generateArgs(ctx, ref, full), CLI_LIMITS);
  if (uninterrupted.code !== 0)
    return [{ outcome: 'unclear', detail: `generate reference failed: ${failureOf(uninterrupted, 'mdm-eval').line}` }];
  const trials: Trial[] = [];
  for (let i = 0; i < count; i++) {
    const rng = ctx.rng(`kill/generate/${i}`);
    const out = join(ctx.root, `generate-${i}`);
    // After the k-th image file appears (a random moment would mostly land in the startup).
    const nth = 1 + rng.int(GENERATED - 1);
    const delay = rng.int(200);
    const id = `generate-kill#${i} seed=${ctx.seed}: kill -9 ${delay} ms after image ${nth} of ${GENERATED} appeared`;
    const killWhen = (kill: () => void) => {
      mkdirSync(join(out, 'images'), { recursive: true });
      let seen = 0;
      const watcher = watch(join(out, 'images'), (event, name) => {
        const file = String(name ?? '');
        if (event === 'rename' && file.endsWith('.png') && existsSync(join(out, 'images', file)) && ++seen === nth)
          setTimeout(kill, delay);
      });
      return () => watcher.close();
    };
    const killed = await runNode(generateArgs(ctx, ref, out), { ...CLI_LIMITS, killWhen });
    const images = existsSync(join(out, 'images')) ? readdirSync(join(out, 'images')).length : 0;
    const rerun = await runNode(generateArgs(ctx, ref, out), CLI_LIMITS);
    let trial: Trial;
    const where = killed.killed ? `${images} image files before the kill` : 'it finished before the kill';
    if (rerun.code !== 0) {
      const failure = failureOf(rerun, 'mdm-eval');
      trial = { outcome: 'unclear', detail: `${id} (${where}); rerun \`${rerun.line}\` → ${failure.line}` };
    } else {
      const diff = compareFolders(out, full);
      const left = leftovers(out);
      const note = left.length ? `; ${left.length} temp files left: ${left.slice(0, 3).join(', ')}` : '';
      trial = diff
        ? { outcome: 'silent', detail: `${id} (${where}); rerun finished but ${diff}${note}` }
        : { outcome: 'survived', detail: `${id} (${where}); rerun equals the uninterrupted generation${note}` };
    }
    trial.tag = killed.killed ? 'generate killed mid-run' : 'generate ended before the kill';
    ctx.log(`generate kill ${i + 1}/${count}: ${trial.outcome}: ${trial.detail}`);
    trials.push(trial);
  }
  return trials;
}

function generateArgs(ctx: Context, ref: Reference, out: string): string[] {
  return evalCli('generate', '--run', ref.dir, '--out', out, ...GENERATE, '--backend', ctx.backend);
}

/** Files (temp files aside) that differ between two sample folders, or undefined when equal. */
function compareFolders(dir: string, reference: string): string | undefined {
  const list = (d: string) =>
    readdirSync(d, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && !/\.tmp(-\d+)?$/.test(e.name))
      .map((e) => relative(d, join(e.parentPath, e.name)))
      .sort();
  const ours = list(dir);
  const theirs = list(reference);
  const missing = theirs.filter((f) => !ours.includes(f));
  if (missing.length) return `${missing.length} files missing (${missing.slice(0, 3).join(', ')})`;
  const extra = ours.filter((f) => !theirs.includes(f));
  if (extra.length) return `${extra.length} extra files (${extra.slice(0, 3).join(', ')})`;
  const changed = ours.filter((f) => !readFileSync(join(dir, f)).equals(readFileSync(join(reference, f))));
  if (changed.length) return `${changed.length} files differ (${changed.slice(0, 3).join(', ')})`;
  return undefined;
}
