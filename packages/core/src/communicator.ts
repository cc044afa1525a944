/**
 * The processes of one data-parallel job and the collectives training needs. A single process is
 * world 1 (`SINGLE_PROCESS`); `initDistributed` in @matryoshka-ts/backends opens Open MPI when a
 * launcher (mpirun, srun) started several. Collectives block until every rank has joined.
 */
export interface Communicator {
  /** This process's index, 0 … world − 1. */
  readonly rank: number;
  readonly world: number;
  /** Who started the processes and how we knew (for the log), e.g. `mpirun (OMPI_COMM_WORLD_RANK)`. */
  readonly launcher: string;
  /** In place: every rank's buffer becomes the element-wise sum (mean, min, max) over the ranks. */
  allReduce(buffer: Float32Array | Float64Array, op?: 'sum' | 'mean' | 'min' | 'max'): void;
  /** In place: every rank's buffer becomes rank `root`'s (default 0). */
  broadcast(buffer: Float32Array | Float64Array | Uint8Array, root?: number): void;
  /** Returns once every rank has called it. */
  barrier(): void;
  /** Stops every rank of the job (the launcher's abort), with this exit code. */
  abort(code: number): never;
  /** Ends the job's collectives; call once, after the last one. */
  finalize(): void;
}

/** One process alone: collectives are the identity. */
export const SINGLE_PROCESS: Communicator = {
  rank: 0,
  world: 1,
  launcher: 'single process',
  allReduce: () => {},
  broadcast: () => {},
  barrier: () => {},
  abort: (code) => {
    // In Node, the exit code; in a browser (no process) an error is all there is.
    globalThis.process?.exit(code);
    throw new Error(`aborted with code ${code}`);
  },
  finalize: () => {},
};

/** A process's place in a job started by a launcher, from the launcher's environment. */
export interface LauncherWorld {
  rank: number;
  world: number;
  /** The launcher and the variables read, e.g. `mpirun (OMPI_COMM_WORLD_RANK/SIZE)`. */
  launcher: string;
}

const LAUNCHERS: { name: string; rank: string; world: string }[] = [
  { name: 'mpirun', rank: 'OMPI_COMM_WORLD_RANK', world: 'OMPI_COMM_WORLD_SIZE' },
  { name: 'PMI', rank: 'PMI_RANK', world: 'PMI_SIZE' },
  // srun sets SLURM_STEP_NUM_TASKS for the tasks of a step; a batch script's own shell has
  // SLURM_PROCID and SLURM_NTASKS too, and must not count as rank 0 of many.
  { name: 'srun', rank: 'SLURM_PROCID', world: 'SLURM_STEP_NUM_TASKS' },
];

/**
 * Rank and world size as the launcher set them (Open MPI's mpirun, a PMI launcher, Slurm's srun),
 * or undefined when no launcher started this process. Malformed values are an error, not world 1.
 */
export function launcherWorld(
  env: Record<string, string | undefined> = globalThis.process?.env ?? {},
): LauncherWorld | undefined {
  for (const { name, rank, world } of LAUNCHERS) {
    const r = env[rank];
    const w = env[world];
    if (r === undefined || w === undefined) continue;
    const rankNo = Number(r);
    const worldNo = Number(w);
    if (!(Number.isInteger(worldNo) && worldNo >= 1 && Number.isInteger(rankNo) && rankNo >= 0 && rankNo < worldNo))
      throw new Error(`${name} set ${rank}=${r} and ${world}=${w}: not a rank in [0, world)`);
    return { rank: rankNo, world: worldNo, launcher: `${name} (${rank}/${world.replace(/^.*_/, '')})` };
  }
  return undefined;
}
