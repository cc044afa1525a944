/**
 * One worker's share of a job split n ways, `--shard i/n` (0 ≤ i < n): a job array's task id or
 * a Kubernetes Indexed Job's completion index. Generation, statistics, data checks and the caches'
 * part files all split this way.
 */
export interface Shard {
  index: number;
  count: number;
}

/** The contiguous part [from, to) of `total` items that shard i of n takes: every item exactly once. */
export function shardRange(total: number, shard: Shard): { from: number; to: number } {
  return {
    from: Math.floor((shard.index * total) / shard.count),
    to: Math.floor(((shard.index + 1) * total) / shard.count),
  };
}
