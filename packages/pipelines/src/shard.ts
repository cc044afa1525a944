import { ConfigError } from '@matryoshka-ts/core';

/**
 * One worker's share of a job split n ways, `--shard i/n` (0 ≤ i < n): a job array's task id or
 * a Kubernetes Indexed Job's completion index. Used by generation, statistics and data-check.
 */
export interface Shard {
  index: number;
  count: number;
}

/** Parses `--shard i/n`. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || !(count >= 1) || !(index < count))
    throw new ConfigError(`--shard must be i/n with 0 ≤ i < n (e.g. 0/4 for the first of four), got '${text}'`);
  return { index, count };
}

/** The contiguous part [from, to) of `total` items that shard i of n takes: every item exactly once. */
export function shardRange(total: number, shard: Shard): { from: number; to: number } {
  return {
    from: Math.floor((shard.index * total) / shard.count),
    to: Math.floor(((shard.index + 1) * total) / shard.count),
  };
}

/** Keeps the items of a stream whose position k has k mod n = i (a stream's length is not known ahead). */
export async function* shardOf<T>(items: AsyncIterable<T> | Iterable<T>, shard: Shard): AsyncGenerator<T> {
  let k = 0;
  for await (const item of items) {
    if (k % shard.count === shard.index) yield item;
    k++;
  }
}

export const shardLabel = (shard: Shard) => `${shard.index}/${shard.count}`;
