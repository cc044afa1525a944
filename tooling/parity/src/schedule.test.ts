import { expect, it } from 'vitest';
import { readSafetensors, toNumbers } from '@matryoshka-ts/checkpoint';
import { levelSchedules, samplingGrid, squaredCosineSchedule } from '@matryoshka-ts/schedules';
import { MODEL_FIXTURE_KINDS } from './model-parity.js';
import { forEachFixture } from './suite.js';

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const kind of MODEL_FIXTURE_KINDS)
  forEachFixture(
    'schedule parity',
    (fixture) => {
      const { tensors } = readSafetensors(fixture.file('schedule'));
      const get = (name: string) => {
        const t = tensors.get(name);
        if (!t) throw new Error(`${fixture.name}: schedule.safetensors has no '${name}'`);
        return t.data as Float32Array | Float64Array;
      };
      const sched = fixture.config.schedule;
      const base = squaredCosineSchedule(sched.num_diffusion_steps);

      it('float64 table equals gammas_f64 (same float64 formula; ≤ 1e-15 for libm ulp differences)', () => {
        expect(maxRel(base.gammas, get('gammas_f64'))).toBeLessThanOrEqual(1e-15);
      });

      it('float32 table equals gammas bit for bit', () => {
        expect(Array.from(base.gammasF32)).toEqual(Array.from(get('gammas')));
      });

      // The function the trainer, the samplers and the losses all take their schedules from.
      const schedules = levelSchedules(base, sched.level_scales, { power: sched.shift_power, shifted: sched.shifted });
      sched.level_scales.forEach((scale, level) => {
        const shifted = schedules[level];
        it(`level ${level} (scale ${scale}) shifted float32 table is bit-exact`, () => {
          const name = `gammas_shifted.level${level}`;
          if (!tensors.has(name)) return expect(fixture.config.num_levels).toBe(1);
          expect(Array.from(shifted.gammasF32)).toEqual(Array.from(get(name)));
        });
        it(`level ${level} shifted float64 table (≤ 1e-12: float64 rounding of the SNR division)`, () => {
          const name = `gammas_shifted_f64.level${level}`;
          if (!tensors.has(name)) return expect(fixture.config.num_levels).toBe(1);
          expect(maxRel(shifted.gammas, get(name))).toBeLessThanOrEqual(1e-12);
        });
      });

      it('5-step grid equals timesteps_k5', () => {
        expect(samplingGrid(5, sched.num_diffusion_steps)).toEqual(toNumbers(tensors.get('timesteps_k5')!.data));
      });
    },
    kind,
  );
