import { availableParallelism } from 'node:os';
import type { Communicator } from '@matryoshka-ts/core';
import { loadAddon } from './addon.js';

/** The job's processes over Open MPI (native/mpi.cc): a core `Communicator`, and the library loaded. */
export interface MpiCommunicator extends Communicator {
  /** The MPI library loaded (e.g. libmpi.so.40). */
  readonly library: string;
}

export interface OpenMpiOptions {
  /** Who started the processes, for messages (e.g. `mpirun (OMPI_COMM_WORLD_RANK/SIZE)`). */
  launcher?: string;
  /** A collective waiting longer than this for a rank fails, naming the wait (0: wait forever). */
  timeoutSeconds?: number;
}

/**
 * Loads Open MPI (libmpi.so.40, or `MDM_MPI_LIBRARY`) through the native addon and initialises it.
 * Throws an Error saying why when the addon is not built or Open MPI cannot be loaded.
 */
export function openMpi(options: OpenMpiOptions = {}): MpiCommunicator {
  const loaded = loadAddon();
  if (!loaded.addon) throw new Error(`MPI needs the native addon: ${loaded.reason}`);
  const addon = loaded.addon;
  const { rank, size, library } = addon.mpiInit();
  // Ranks sharing a machine share its cores: each gets its share of worker threads rather than
  // all of them. Read after MPI_Init, which sets Open MPI's variables under srun too.
  const local = Number(process.env.OMPI_COMM_WORLD_LOCAL_SIZE ?? process.env.MPI_LOCALNRANKS ?? 1);
  if (Number.isInteger(local) && local > 1) addon.setThreads(Math.max(1, Math.floor(availableParallelism() / local)));
  const timeout = options.timeoutSeconds ?? 0;
  const one = new Float64Array(1);
  return {
    rank,
    world: size,
    library,
    launcher: options.launcher ?? 'MPI',
    allReduce: (buffer, op = 'sum') => addon.mpiAllreduce(buffer, op, timeout),
    broadcast: (buffer, root = 0) => addon.mpiBroadcast(buffer, root, timeout),
    barrier: () => addon.mpiAllreduce(one, 'sum', timeout),
    abort: (code) => addon.mpiAbort(code),
    finalize: () => addon.mpiFinalize(),
  };
}
