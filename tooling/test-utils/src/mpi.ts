import { spawnSync } from 'node:child_process';

/**
 * The environment mpirun needs in containers: running as root (Open MPI refuses it without both
 * variables), and no cross-memory attach between the ranks (ptrace is often not permitted there).
 */
export const MPI_ENV: Record<string, string> = {
  OMPI_ALLOW_RUN_AS_ROOT: '1',
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
  OMPI_MCA_btl_vader_single_copy_mechanism: 'none',
};

/** Whether Open MPI's `mpirun` is on the PATH (Debian: openmpi-bin). */
export function hasMpirun(): boolean {
  return spawnSync('mpirun', ['--version'], { stdio: 'ignore' }).status === 0;
}
