import * as tf from '@tensorflow/tfjs-core';

/** The complete state of an `Rng`, as plain JSON. */
export interface RngState {
  words: number[];
  spare: number | null;
}

/**
 * A seeded pseudo-random generator (xoshiro128**) whose whole state is four 32-bit words, so a
 * checkpoint can store it and a resumed run draws the same numbers.
 */
export class Rng {
  private s: Uint32Array;
  /** A second normal from the last Box–Muller pair, or null. */
  private spare: number | null = null;

  constructor(seed: number | RngState = 0) {
    this.s = new Uint32Array(4);
    if (typeof seed !== 'number') {
      this.setState(seed);
      return;
    }
    // splitmix32 spreads the seed over the state; an all-zero state would be stuck at zero.
    let z = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b) >>> 0;
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (t ^ (t >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = this.uniform();
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A Float32Array of `n` standard normals. */
  normals(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }

  /** A float32 tensor of standard normals. */
  normalTensor(shape: number[]): tf.Tensor {
    return tf.tensor(this.normals(shape.reduce((a, b) => a * b, 1)), shape, 'float32');
  }

  /** The generator's state (JSON-safe); `new Rng(state)` or `setState` restores it. */
  getState(): RngState {
    return { words: [...this.s], spare: this.spare };
  }

  setState(state: RngState): void {
    if (state.words?.length !== 4 || state.words.some((w) => !Number.isInteger(w))) {
      throw new Error('Rng state needs four 32-bit integer words');
    }
    // Validate everything before writing, so a rejected state leaves the generator untouched.
    const words = state.words.map((w) => w >>> 0);
    if (words.every((v) => v === 0)) throw new Error('Rng state must not be all zero');
    const spare = state.spare ?? null;
    if (spare !== null && !(typeof spare === 'number' && Number.isFinite(spare))) {
      throw new Error('Rng state spare must be a finite number or null');
    }
    this.s.set(words);
    this.spare = spare;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
