import { DataError } from '@matryoshka-ts/core';
import { SHARD_ORDER, derivedRng } from './seeds.js';

/**
 * The shards that rank `rank` of `world` reads in epoch `epoch`, in reading order.
 *
 * Every rank computes the same seeded permutation of all shard indices (it depends on the seed
 * and the epoch only) and takes every `world`-th entry starting at its rank: the ranks' lists are
 * disjoint and together cover every shard once per epoch, with no communication between
 * processes. When the number of shards is not a multiple of `world`, the first ranks get one shard
 * more; the permutation changes every epoch, so no rank keeps the extra shard.
 */
export function shardOrder(numShards: number, seed: number, epoch: number, rank = 0, world = 1): number[] {
  if (!Number.isInteger(world) || world < 1)
    throw new Error(`shard order: world size must be a positive integer, got ${world}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= world)
    throw new Error(`shard order: rank must be an integer in [0, ${world}), got ${rank}`);
  if (world > numShards) {
    throw new DataError(
      `shard order: ${world} processes but only ${numShards} shard${numShards === 1 ? '' : 's'}: ` +
        `every process needs at least one shard of its own; ` +
        `split the data set into more shards or use fewer processes`,
    );
  }
  const order = permutation(numShards, seed, epoch);
  const mine: number[] = [];
  for (let i = rank; i < numShards; i += world) mine.push(order[i]);
  return mine;
}

/** Fisher–Yates with a generator of (seed, epoch) alone, identical on every rank. */
function permutation(n: number, seed: number, epoch: number): number[] {
  const rng = derivedRng(seed, SHARD_ORDER, epoch);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
