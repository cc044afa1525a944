import { existsSync } from 'node:fs';
import { buildHint } from '@matryoshka-ts/kernels-native';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from './backend.js';

// The addon as an npm install with its scripts blocked leaves it: the package is there, the
// compiled file is not.
vi.mock('@matryoshka-ts/kernels-native', async (original) => {
  const actual = await original<typeof import('@matryoshka-ts/kernels-native')>();
  return {
    ...actual,
    loadAddon: () => ({ addon: undefined, reason: `the native addon was not built. ${actual.buildHint()}` }),
  };
});

const writes: string[] = [];
let spy: ReturnType<typeof vi.spyOn>;
beforeAll(() => {
  spy = vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: string) => {
    writes.push(String(chunk));
    return true;
  }) as typeof process.stderr.write);
});
afterAll(() => spy.mockRestore());

describe("'auto' with the native package installed but its addon not built", () => {
  it('falls back to wasm and says, once, why and how to build the addon', async () => {
    const info = await initBackend({ backend: 'auto' });
    expect(info.name).toBe('wasm');
    const lines = writes.filter((w) => w.startsWith('[matryoshka-ts]'));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[matryoshka-ts\] backend: wasm/);
    expect(lines[1]).toMatch(/^\[matryoshka-ts\] not using the native kernels: the native addon was not built\./);
    expect(lines[1]).toContain('npm rebuild @matryoshka-ts/kernels-native --ignore-scripts=false');
    await initBackend({ backend: 'auto' });
    expect(writes.filter((w) => w.startsWith('[matryoshka-ts]'))).toHaveLength(2);
  });

  it('names a build script that exists in the installed package', () => {
    const script = /`node (\S+) --strict`/.exec(buildHint())?.[1];
    expect(script).toBeDefined();
    expect(existsSync(script!)).toBe(true);
  });
});
