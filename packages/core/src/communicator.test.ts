import { describe, expect, it } from 'vitest';
import { SINGLE_PROCESS, launcherWorld } from './communicator.js';

describe('launcherWorld', () => {
  it("reads mpirun's, PMI's and srun's variables, in that order", () => {
    expect(launcherWorld({})).toBeUndefined();
    expect(launcherWorld({ OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '4' })).toEqual({
      rank: 1,
      world: 4,
      launcher: 'mpirun (OMPI_COMM_WORLD_RANK/SIZE)',
    });
    expect(launcherWorld({ PMI_RANK: '0', PMI_SIZE: '2' })?.world).toBe(2);
    expect(launcherWorld({ SLURM_PROCID: '3', SLURM_STEP_NUM_TASKS: '8', PMI_RANK: '2', PMI_SIZE: '8' })?.rank).toBe(2);
    expect(launcherWorld({ SLURM_PROCID: '3', SLURM_STEP_NUM_TASKS: '8' })?.launcher).toMatch(/^srun/);
  });

  it("does not take a Slurm batch script's own shell for rank 0 of many", () => {
    expect(launcherWorld({ SLURM_PROCID: '0', SLURM_NTASKS: '8' })).toBeUndefined();
  });

  it('refuses values that are not a rank of the world', () => {
    expect(() => launcherWorld({ OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_SIZE: '2' })).toThrow(/not a rank/);
    expect(() => launcherWorld({ PMI_RANK: 'x', PMI_SIZE: '2' })).toThrow(/PMI_RANK=x/);
  });
});

describe('SINGLE_PROCESS', () => {
  it('leaves buffers as they are (the sum over one rank)', () => {
    const buffer = Float32Array.of(1, 2);
    SINGLE_PROCESS.allReduce(buffer);
    SINGLE_PROCESS.broadcast(buffer);
    expect([...buffer]).toEqual([1, 2]);
    expect(SINGLE_PROCESS.world).toBe(1);
  });
});
