import type { Rng } from '@matryoshka-ts/core';

/**
 * A shuffle buffer (as in tf.data and webdataset): shards are read sequentially, so shuffling
 * only the shard order would keep each shard's samples together; the buffer mixes samples of
 * consecutive shards within a window of `capacity` items, in constant memory.
 *
 * `push` fills the buffer to `capacity`; from then on every push emits a random slot and puts the
 * new item there. `drain` empties it in random order at the end of an epoch. All choices come from
 * the given seeded generator, so the output order is a function of the input order and the seed.
 * A capacity of 0 or 1 passes items through in order.
 */
export class ShuffleBuffer<T> {
  private readonly items: T[] = [];

  constructor(
    readonly capacity: number,
    private readonly rng: Rng,
  ) {
    if (!Number.isInteger(capacity) || capacity < 0)
      throw new Error(`shuffle buffer: capacity must be a non-negative integer, got ${capacity}`);
  }

  get size(): number {
    return this.items.length;
  }

  /** Adds `item`; returns the item emitted in exchange once the buffer is full, else undefined. */
  push(item: T): T | undefined {
    if (this.capacity <= 1) return item;
    if (this.items.length < this.capacity) {
      this.items.push(item);
      return undefined;
    }
    const slot = this.rng.int(this.capacity);
    const out = this.items[slot];
    this.items[slot] = item;
    return out;
  }

  /** Removes and returns a random item, or undefined when empty (the end of the epoch). */
  drain(): T | undefined {
    if (this.items.length === 0) return undefined;
    const slot = this.rng.int(this.items.length);
    const out = this.items[slot];
    // Move the last item into the hole: O(1), and still a function of the seed alone.
    this.items[slot] = this.items[this.items.length - 1];
    this.items.pop();
    return out;
  }
}
