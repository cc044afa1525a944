import { describe, expect, it } from 'vitest';
import { learningRate } from './optim.js';

describe('learningRate', () => {
  it('warms up linearly, then stays constant without a decay (the official schedule)', () => {
    expect(learningRate(25, 2e-3, 100)).toBeCloseTo(5e-4, 12);
    expect(learningRate(100, 2e-3, 100)).toBe(2e-3);
    expect(learningRate(5000, 2e-3, 100)).toBe(2e-3);
    expect(learningRate(1, 2e-3, 0)).toBe(2e-3);
  });

  it('falls along a cosine from lr at the end of warm-up to floor·lr at the last step', () => {
    const decay = { steps: 1100, floor: 0.1 };
    expect(learningRate(50, 1, 100, decay)).toBeCloseTo(0.5, 12); // still warming up
    expect(learningRate(100, 1, 100, decay)).toBeCloseTo(1, 12);
    // Halfway through the fall, cos(π/2) = 0: half-way between 1 and the floor.
    expect(learningRate(600, 1, 100, decay)).toBeCloseTo(0.55, 12);
    // A quarter: ½(1 + cos(π/4)).
    expect(learningRate(350, 1, 100, decay)).toBeCloseTo(0.1 + 0.9 * 0.5 * (1 + Math.SQRT1_2), 12);
    expect(learningRate(1100, 1, 100, decay)).toBeCloseTo(0.1, 12);
    expect(learningRate(2000, 1, 100, decay)).toBeCloseTo(0.1, 12); // past the end: the floor
  });
});
