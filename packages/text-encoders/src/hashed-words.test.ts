import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { HashedWordEncoder, words } from './hashed-words.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

describe('HashedWordEncoder', () => {
  const enc = new HashedWordEncoder({ width: 32, maxTokens: 4 });

  it('splits captions into lower-case words', () => {
    expect(words('Woman Technologist: medium-dark skin tone')).toEqual([
      'woman',
      'technologist',
      'medium',
      'dark',
      'skin',
      'tone',
    ]);
    expect(words('  ')).toEqual([]);
  });

  it('gives [B, L, D] features with a mask; padding is zero; long captions are truncated', () => {
    const { tokens, mask } = enc.encode(['grinning face', 'a b c d e f', '']);
    expect(tokens.shape).toEqual([3, 4, 32]);
    expect(mask.arraySync()).toEqual([
      [1, 1, 0, 0],
      [1, 1, 1, 1],
      [1, 0, 0, 0],
    ]);
    const t = tokens.arraySync();
    expect(t[0][2].every((v) => v === 0)).toBe(true);
    expect(t[2][0].every((v) => v === 0)).toBe(true); // the empty (null) caption
    tf.dispose([tokens, mask]);
  });

  it('is deterministic across instances and depends on the word and its position', () => {
    const a = new HashedWordEncoder({ width: 32, maxTokens: 4 }).encode(['cat dog']).tokens.arraySync()[0];
    const b = enc.encode(['cat dog']).tokens.arraySync()[0];
    const c = enc.encode(['dog cat']).tokens.arraySync()[0];
    expect(a).toEqual(b);
    // The same word at another position differs only by the small position code.
    const diff = a[0].map((v, i) => Math.abs(v - c[1][i]));
    expect(Math.max(...diff)).toBeGreaterThan(0);
    expect(Math.max(...diff)).toBeLessThan(0.25);
    // Different words are nearly orthogonal (random unit vectors in 32-D: |cos| small).
    const dot = a[0].reduce((s, v, i) => s + v * a[1][i], 0);
    expect(Math.abs(dot)).toBeLessThan(0.6);
  });

  it('names itself by version and shape', () => {
    expect(enc.id).toBe('hashed-words-v1-d32-l4');
    expect(enc.width).toBe(32);
  });
});
