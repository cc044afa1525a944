import { type Communicator, ConfigError } from '@matryoshka-ts/core';
import type { StreamPosition } from '@matryoshka-ts/data';
import type { TrainConfig } from './config.js';
import type { TrainProgress } from './run-checkpoint.js';

/**
 * Where rank `comm.rank` continues reading when a run resumes, possibly with another number of ranks.
 *
 * - The bundled data has one position for the whole batch (each rank takes its rows of the same
 *   global batch), so any number of ranks continues exactly from it: the data is re-partitioned.
 * - A streamed source gives each rank its own part of the shards and its own position. The same
 *   number of ranks continues each rank's position. Another number re-partitions the shards, which
 *   is exact only where every rank stood at the start of the same epoch; anywhere else the
 *   samples already seen cannot be told apart from the rest, and the resume is refused.
 */
export function dataPositionOnResume(
  progress: TrainProgress,
  config: Pick<TrainConfig, 'data'>,
  comm: Pick<Communicator, 'rank' | 'world'>,
  file: string,
): { position: StreamPosition; note?: string } {
  const saved = progress.world ?? 1;
  if (!(Number.isInteger(saved) && saved >= 1))
    throw new ConfigError(`${file}: progress.world is ${JSON.stringify(progress.world)}: expected a positive integer`);
  const ranks = (n: number) => `${n} rank${n === 1 ? '' : 's'}`;
  if (config.data.source === 'bundled') {
    const note =
      saved === comm.world
        ? undefined
        : `the run was trained by ${ranks(saved)}, now ${ranks(comm.world)}: the bundled data continues from ` +
          `the same position, and a step now sees ${comm.world} × the per-rank batch`;
    return { position: progress.data, note };
  }
  const positions: StreamPosition[] = saved > 1 ? (progress.dataRanks ?? []) : [progress.data];
  if (positions.length !== saved)
    throw new ConfigError(
      `${file}: the run was trained by ${ranks(saved)} but its checkpoint holds ${positions.length} data positions`,
    );
  if (saved === comm.world) return { position: { ...positions[comm.rank] } };
  const epoch = positions[0].epoch;
  if (positions.every((p) => p.epoch === epoch && p.cursor === 0 && !p.frame))
    return {
      position: { epoch, cursor: 0 },
      note:
        `the run was trained by ${ranks(saved)}, now ${ranks(comm.world)}: ` +
        `epoch ${epoch}'s shards are re-partitioned`,
    };
  const where = positions.map((p, r) => `rank ${r}: epoch ${p.epoch}, sample ${p.cursor}`).join('; ');
  throw new ConfigError(
    `${file} was written by ${ranks(saved)}, each reading its own part of the shards (${where}); ` +
      `${ranks(comm.world)} cannot continue them exactly. Resume with ${ranks(saved)} ` +
      `(${saved === 1 ? 'one process' : `mpirun -np ${saved}`}), or from a checkpoint at the start of an epoch`,
  );
}
