import { describe, expect, it } from 'vitest';
import { dataPositionOnResume } from './data-parallel-resume.js';
import type { TrainProgress } from './run-checkpoint.js';

const progress = (over: Partial<TrainProgress>): TrainProgress => ({
  step: 10,
  phase: 0,
  phaseStep: 10,
  rng: { words: [1, 2, 3, 4], spare: null },
  data: { epoch: 0, cursor: 40 },
  adamStep: 10,
  emaUpdates: 10,
  badInARow: 0,
  badTotal: 0,
  ...over,
});
const bundled = { data: { source: 'bundled' } } as never;
const streamed = { data: { source: 'cc12m' } } as never;
const rank = (r: number, world: number) => ({ rank: r, world });

describe('dataPositionOnResume', () => {
  it('continues the bundled data from its one position with any number of ranks', () => {
    const saved = progress({ world: 2 });
    expect(dataPositionOnResume(saved, bundled, rank(0, 2), 'ckpt')).toEqual({ position: saved.data });
    const one = dataPositionOnResume(saved, bundled, rank(0, 1), 'ckpt');
    expect(one.position).toEqual(saved.data);
    expect(one.note).toMatch(/trained by 2 ranks, now 1 rank/);
  });

  it('gives each rank of a streamed run its own position back when the world is the same', () => {
    const dataRanks = [
      { epoch: 1, cursor: 7 },
      { epoch: 0, cursor: 900, frame: 3 },
    ];
    const saved = progress({ world: 2, data: dataRanks[0], dataRanks });
    expect(dataPositionOnResume(saved, streamed, rank(1, 2), 'ckpt').position).toEqual(dataRanks[1]);
    expect(dataPositionOnResume(progress({}), streamed, rank(0, 1), 'ckpt').position).toEqual({ epoch: 0, cursor: 40 });
  });

  it('re-partitions a streamed run at the start of an epoch, and refuses anywhere else', () => {
    const atStart = progress({
      world: 2,
      dataRanks: [
        { epoch: 3, cursor: 0 },
        { epoch: 3, cursor: 0 },
      ],
    });
    const moved = dataPositionOnResume(atStart, streamed, rank(2, 4), 'ckpt');
    expect(moved.position).toEqual({ epoch: 3, cursor: 0 });
    expect(moved.note).toMatch(/re-partitioned/);
    const midway = progress({
      world: 2,
      dataRanks: [
        { epoch: 3, cursor: 5 },
        { epoch: 3, cursor: 0 },
      ],
    });
    expect(() => dataPositionOnResume(midway, streamed, rank(0, 1), 'ckpt')).toThrow(
      /written by 2 ranks, .*rank 0: epoch 3, sample 5.* Resume with 2 ranks \(mpirun -np 2\)/,
    );
    // One process's run resumed by two ranks mid-epoch: the same refusal.
    expect(() => dataPositionOnResume(progress({}), streamed, rank(0, 2), 'ckpt')).toThrow(/Resume with 1 rank/);
  });

  it('refuses a checkpoint whose rank positions do not match its world', () => {
    expect(() =>
      dataPositionOnResume(progress({ world: 3, dataRanks: [{ epoch: 0, cursor: 0 }] }), streamed, rank(0, 3), 'c'),
    ).toThrow(/trained by 3 ranks but its checkpoint holds 1 data positions/);
    expect(() => dataPositionOnResume(progress({ world: 0 }), bundled, rank(0, 1), 'c')).toThrow(/progress.world/);
  });
});
