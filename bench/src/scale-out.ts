// Data-parallel training on this machine: one process, then `mpirun -np 2` ranks (each with its
// share of the cores), at the same per-rank batch; prints step time, images/s, the all-reduce's
// share of a step and bytes reduced per step (docs/scale-out.md). A benchmark, not a test:
//   pnpm bench:scale-out [preset=emoji] [batch=8] [repeats=5] [ranks=1,2]
import { availableParallelism } from 'node:os';
import { MPI_ENV, hasMpirun } from '@matryoshka-ts/test-utils';
import { runJson, tsx } from './child.js';
import { describeMachine, printMachine } from './machine.js';

const [preset = 'emoji', batch = '8', repeats = '5', ranksArg = '1,2'] = process.argv.slice(2);
const machine = describeMachine();
printMachine(machine);
const mpirun = hasMpirun();
// Containers: root, and no cross-memory attach between processes (as the tests run it).
Object.assign(process.env, MPI_ENV);
const rank = [...tsx, 'bench/src/scale-out-rank.ts', preset, batch, repeats];
console.log(`cores: ${availableParallelism()}; ${mpirun ? 'mpirun found' : 'no mpirun: 1 rank only'}`);
let one: Record<string, unknown> | undefined;
for (const n of ranksArg.split(',').map(Number)) {
  if (n > 1 && !mpirun) continue;
  const r =
    n === 1
      ? runJson(process.execPath, rank)
      : runJson('mpirun', ['--oversubscribe', '-np', String(n), process.execPath, ...rank]);
  if ('error' in r) {
    console.log(`${n} rank(s): failed (${r.error})`);
    continue;
  }
  if (n === 1) one = r;
  const ms = (s: unknown) => `${((s as number) * 1000).toFixed(1)} ms`;
  console.log(
    `${n} rank${n > 1 ? 's' : ''}: ${r.preset} (${(r.params as number).toLocaleString('en')} params), ` +
      `batch ${r.batch_per_rank}/rank: step ${ms(r.step_s)}, ${(r.images_per_s as number).toFixed(1)} img/s` +
      (one && n > 1 ? ` (${((r.images_per_s as number) / (one.images_per_s as number)).toFixed(2)}× 1 rank)` : '') +
      `; compute ${ms(r.compute_s)}, waiting for the slowest rank ${ms(r.wait_s)}, ` +
      `all-reduce ${ms(r.allreduce_s)} (${(100 * (r.allreduce_share as number)).toFixed(1)}% of the step) ` +
      `of ${((r.bytes_per_step as number) / 2 ** 20).toFixed(2)} MiB` +
      (r.allreduce_gbps
        ? `; all-reduce alone ${ms(r.allreduce_alone_s)} = ${(r.allreduce_gbps as number).toFixed(2)} GB/s`
        : ''),
  );
  console.log(JSON.stringify(r));
}
