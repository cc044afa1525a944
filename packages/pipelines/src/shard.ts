import { ConfigError, type Shard, shardRange } from '@matryoshka-ts/core';

// The split itself is core's (the caches' part files use it too); the command-line side is here.
export { type Shard, shardRange };

/** Parses `--shard i/n`. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || !(count >= 1) || !(index < count))
    throw new ConfigError(`--shard must be i/n with 0 ≤ i < n (e.g. 0/4 for the first of four), got '${text}'`);
  return { index, count };
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
