import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '@matryoshka-ts/pipelines';
import { nativeKernelInfo } from '@matryoshka-ts/backends';
import { MPI_ENV, hasMpirun } from '@matryoshka-ts/test-utils';

// `mpirun -np 2 mdm-train train …`: the tiny preset trains on two ranks, checkpoints, resumes
// (exactly, and with one process), and a killed rank stops the job with the checkpoint intact.
// The numerical check of data parallelism (2 ranks at B = 1 process at 2B) is in
// packages/pipelines/src/data-parallel.test.ts.
const cli = fileURLToPath(new URL('./cli.ts', import.meta.url));
const node = [process.execPath, '--conditions=source', '--import', 'tsx', cli];
const env = { ...process.env, ...MPI_ENV };
// mpirun, and the native addon through which the ranks reach MPI (pipelines' data-parallel test
// fails CI where mpirun is missing).
const mpi = hasMpirun() && (await nativeKernelInfo()) !== undefined;
const dir = mkdtempSync(join(tmpdir(), 'mdm-mpi-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const mpirun = (np: number, args: string[]) => ['--oversubscribe', '-np', String(np), ...node, 'train', ...args];
function train(np: number, args: string[]): string {
  const argv = np > 1 ? ['mpirun', mpirun(np, args)] : [node[0], [...node.slice(1), 'train', ...args]];
  return execFileSync(argv[0] as string, argv[1] as string[], {
    env,
    encoding: 'utf8',
    stdio: 'pipe',
    timeout: 120_000,
  });
}
const losses = (run: string) =>
  readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line).loss as number);

describe.runIf(mpi)('mdm-train over mpirun -np 2', () => {
  const whole = join(dir, 'whole');
  const resumed = join(dir, 'resumed');
  beforeAll(() => {
    train(2, ['--preset', 'tiny', '--steps', '6', '--set', 'checkpointEvery=3', '--out', whole]);
  }, 120_000);

  it('trains the tiny preset: rank 0 alone writes the run, the checkpoint records 2 ranks', () => {
    expect(readdirSync(whole).sort()).toEqual(
      expect.arrayContaining(['checkpoint.safetensors', 'config.json', 'loss.svg', 'metrics.jsonl', 'samples.png']),
    );
    // One metrics row per step (not one per rank).
    expect(losses(whole)).toHaveLength(6);
    const saved = loadCheckpoint(join(whole, 'checkpoint.safetensors'));
    expect(saved.progress.step).toBe(6);
    expect(saved.progress.world).toBe(2);
  });

  it('resumes exactly: 3 steps, then resumed to 6, equals 6 steps at once', () => {
    train(2, ['--preset', 'tiny', '--steps', '3', '--set', 'checkpointEvery=3', '--out', resumed]);
    train(2, ['--resume', resumed, '--steps', '6']);
    expect(losses(resumed)).toEqual(losses(whole));
    const a = loadCheckpoint(join(whole, 'checkpoint.safetensors')).values;
    const b = loadCheckpoint(join(resumed, 'checkpoint.safetensors')).values;
    for (const group of ['params', 'ema', 'adamM', 'adamV'] as const)
      for (const [name, values] of a[group]) expect(b[group].get(name), `${group} ${name}`).toEqual(values);
  }, 120_000);

  it('resumes a 2-rank run in one process (the bundled data is re-partitioned from its position)', () => {
    const log = execFileSync(node[0], [...node.slice(1), 'train', '--resume', resumed, '--steps', '7'], {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(log).toMatch(/run: /);
    const saved = loadCheckpoint(join(resumed, 'checkpoint.safetensors'));
    expect(saved.progress.step).toBe(7);
    // Written by one process now: no rank count carried over from the checkpoint it started from.
    expect(saved.progress.world).toBeUndefined();
  }, 120_000);

  it('a killed rank stops the job, named by the launcher; the last checkpoint stays intact', async () => {
    const run = join(dir, 'killed');
    const child: ChildProcess = spawn(
      'mpirun',
      mpirun(2, ['--preset', 'tiny', '--steps', '5000', '--set', 'checkpointEvery=2', '--out', run]),
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const checkpoint = join(run, 'checkpoint.safetensors');
    const deadline = Date.now() + 90_000;
    while (!existsSync(checkpoint) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(checkpoint)).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    // Rank 1: the process of this run whose environment says so.
    const rank1 = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .find((p) => {
        try {
          const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
          const environ = readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
          return cmd.includes(run) && cmd.includes(cli) && environ.includes('OMPI_COMM_WORLD_RANK=1');
        } catch {
          return false;
        }
      });
    expect(rank1).toBeDefined();
    process.kill(Number(rank1), 'SIGKILL');
    const code = await exited;
    expect(code).not.toBe(0);
    expect(output).toMatch(/rank 1\b.*(exited|killed|signal)/i);
    // The checkpoint is whole (every tensor's CRC checked on load) and at a checkpoint step.
    const saved = loadCheckpoint(checkpoint);
    expect(saved.progress.step % 2).toBe(0);
    expect(saved.progress.step).toBeGreaterThan(0);
  }, 120_000);
});

describe.runIf(mpi)('tooling/launch/slurm/train.sbatch', () => {
  it('starts a run, and continues it when submitted again (srun stood in for by mpirun -np 2)', () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    // srun's own options (--mpi, --kill-on-bad-exit) are dropped; the rest is the command.
    writeFileSync(join(bin, 'srun'), '#!/usr/bin/env bash\nshift 2\nexec mpirun --oversubscribe -np 2 "$@"\n', {
      mode: 0o755,
    });
    const run = join(dir, 'sbatch-run');
    const script = fileURLToPath(new URL('../../../tooling/launch/slurm/train.sbatch', import.meta.url));
    const submit = (trainArgs: string) =>
      execFileSync('bash', [script], {
        env: {
          ...env,
          PATH: `${bin}:${process.env.PATH}`,
          RUN: run,
          ARGS: '--preset tiny',
          TRAIN_ARGS: trainArgs,
          MDM_TRAIN: node.join(' '),
        },
        encoding: 'utf8',
        stdio: 'pipe',
        timeout: 120_000,
      });
    submit('--steps 2');
    expect(loadCheckpoint(join(run, 'checkpoint.safetensors')).progress).toMatchObject({ step: 2, world: 2 });
    submit('--steps 4');
    expect(loadCheckpoint(join(run, 'checkpoint.safetensors')).progress.step).toBe(4);
    expect(losses(run)).toHaveLength(4);
  }, 120_000);
});
