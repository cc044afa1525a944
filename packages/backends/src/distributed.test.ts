import { describe, expect, it } from 'vitest';
import { SINGLE_PROCESS } from '@matryoshka-ts/core';
import { initDistributed } from './distributed.js';

describe('initDistributed', () => {
  it('is one process when no launcher started this one, or started it alone', async () => {
    expect(await initDistributed({ env: {} })).toBe(SINGLE_PROCESS);
    expect(await initDistributed({ env: { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '1' } })).toBe(
      SINGLE_PROCESS,
    );
  });

  it('says what to install when several ranks were started but MPI cannot be opened', async () => {
    // A library that is not there stands for a machine without Open MPI (dlopen fails the same way).
    const env = { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2', MDM_MPI_LIBRARY: '/nonexistent/libmpi.so.40' };
    const process = { ...globalThis.process.env };
    globalThis.process.env.MDM_MPI_LIBRARY = env.MDM_MPI_LIBRARY;
    try {
      const why =
        /cannot open Open MPI .*apt-get install openmpi-bin|data-parallel training needs|MPI needs the native addon/;
      await expect(initDistributed({ env })).rejects.toThrow(/^rank 1 of 2 \(mpirun .*\): /);
      await expect(initDistributed({ env })).rejects.toThrow(why);
    } finally {
      globalThis.process.env = process;
    }
  });

  it('refuses a timeout that is not a number of seconds', async () => {
    await expect(
      initDistributed({ env: { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2', MDM_MPI_TIMEOUT: 'soon' } }),
    ).rejects.toThrow(/MDM_MPI_TIMEOUT must be a number/);
  });
});
