import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadAddon } from '@matryoshka-ts/kernels-native';
import { initBackend } from './backend.js';

// With the native addon built (pnpm install builds it where g++ exists) auto picks `native`, the
// wasm backend with native convolutions; without it, plain wasm.
const expected = loadAddon().addon ? 'native' : 'wasm';

// Spy on stderr for the whole file: the choice line is printed once per process, so the tests
// below run in order and count every line this module writes.
const writes: string[] = [];
let spy: ReturnType<typeof vi.spyOn>;

beforeAll(() => {
  const original = process.stderr.write.bind(process.stderr);
  spy = vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (text.includes('[matryoshka-ts]')) {
      writes.push(text);
      return true;
    }
    return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write);
});

afterAll(() => {
  spy.mockRestore();
});

describe("initBackend({ backend: 'auto' }) and the choice line", () => {
  it("'auto' picks native (or wasm without the addon) without tfjs-node installed; quiet prints nothing", async () => {
    const info = await initBackend({ backend: 'auto', quiet: true });
    expect(info.name).toBe(expected);
    expect(tf.getBackend()).toBe('wasm');
    expect(writes).toEqual([]);
  });

  it('the default (no options) is auto, and prints the choice once to stderr', async () => {
    const info = await initBackend();
    expect(info.name).toBe(expected);
    expect(writes).toEqual([`[matryoshka-ts] backend: ${info.description}\n`]);
    expect(writes[0]).toMatch(expected === 'native' ? /native \(wasm \+ N-API/ : /wasm/);
  });

  it('later calls, even for another backend, print nothing more', async () => {
    const info = await initBackend({ backend: 'cpu' });
    expect(info.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    await initBackend({ backend: 'auto' });
    expect(tf.getBackend()).toBe('wasm');
    expect(writes.length).toBe(1);
  });
});
