import { BackendError, type Communicator, SINGLE_PROCESS, launcherWorld } from '@matryoshka-ts/core';

export interface DistributedOptions {
  /** The environment to read the launcher's rank and world from (default `process.env`). */
  env?: Record<string, string | undefined>;
  /**
   * A collective waiting longer than this for the other ranks fails with an error (seconds; 0:
   * wait forever). Default `MDM_MPI_TIMEOUT`, else 1800: long enough for rank 0 to draw sample
   * grids while the others wait, short enough that a hung job does not hold its machines for days.
   */
  timeoutSeconds?: number;
}

/**
 * The job this process belongs to: `SINGLE_PROCESS` when no launcher started it (or one started
 * just this process), else Open MPI opened through the native addon, its rank and world checked
 * against the launcher's. Like `initBackend`, for apps to call, never a library. Throws a
 * BackendError saying what to install or how to launch when several processes were started but
 * cannot talk.
 */
export async function initDistributed(options: DistributedOptions = {}): Promise<Communicator> {
  const env = options.env ?? process.env;
  const started = launcherWorld(env);
  if (!started || started.world === 1) return SINGLE_PROCESS;
  const who = `rank ${started.rank} of ${started.world} (${started.launcher})`;
  const native = await import('@matryoshka-ts/kernels-native').catch(() => undefined);
  if (!native) throw new BackendError(`${who}: data-parallel training needs @matryoshka-ts/kernels-native`);
  const timeoutSeconds = options.timeoutSeconds ?? timeoutFrom(env.MDM_MPI_TIMEOUT);
  let comm: Communicator;
  try {
    comm = native.openMpi({ launcher: started.launcher, timeoutSeconds });
  } catch (error) {
    throw new BackendError(
      `${who}: cannot open Open MPI (${(error as Error).message}). Install it (Debian/Ubuntu: ` +
        'apt-get install openmpi-bin; `bash tooling/scripts/native-libs.sh` does), or set MDM_MPI_LIBRARY ' +
        'to the path of libmpi.so.40',
      { cause: error },
    );
  }
  if (comm.rank !== started.rank || comm.world !== started.world) {
    throw new BackendError(
      `${who}, but MPI sees rank ${comm.rank} of ${comm.world}: start every rank with the same launcher ` +
        '(mpirun -np N, or srun with --mpi=pmix in a Slurm allocation)',
    );
  }
  return comm;
}

function timeoutFrom(value: string | undefined): number {
  if (value === undefined || value === '') return 1800;
  const seconds = Number(value);
  if (!(Number.isFinite(seconds) && seconds >= 0))
    throw new BackendError(`MDM_MPI_TIMEOUT must be a number of seconds ≥ 0 (0: no limit), got ${value}`);
  return seconds;
}
