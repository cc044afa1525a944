import { Rng } from '@matryoshka-ts/core';

/**
 * Purposes of the stream's random draws. Each gets its own generator, so that changing one (say,
 * the shuffle buffer's size) never changes another's numbers (the shard order, the flips).
 */
export const SHARD_ORDER = 1;
export const SAMPLE_SHUFFLE = 2;
export const FLIP = 3;

/**
 * A generator that is a function of the run's seed, a purpose and a few integers (epoch, rank,
 * sample index) alone — never of what was drawn before — so a resumed stream can recreate it
 * from its position without replaying other draws.
 */
export function derivedRng(seed: number, purpose: number, ...parts: number[]): Rng {
  // FNV-1a over 32-bit words, then Rng's own splitmix spreads the result over its state.
  let h = 0x811c9dc5;
  for (const word of [seed, purpose, ...parts]) {
    h = Math.imul(h ^ (word >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ Math.floor(word / 4294967296), 0x01000193) >>> 0;
  }
  return new Rng(h);
}
