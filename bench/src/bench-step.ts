import type { DiffusionModel } from '@matryoshka-ts/core';
import { TrainStep } from '@matryoshka-ts/pipelines';
import type { LevelSchedules } from '@matryoshka-ts/schedules';

/**
 * The pipelines' training step as the PyTorch reference times it (bench/torch/mdm_reference.py):
 * v-prediction with the ε loss, Adam (β 0.9/0.99, ε 1e-8) at lr 1e-4 without warm-up, and no
 * clipping, gradient norm or EMA, which the reference does not compute either.
 */
export function benchTrainStep(model: DiffusionModel, schedules: LevelSchedules): TrainStep {
  return new TrainStep(model, schedules, {
    loss: { prediction: 'v', target: 'eps' },
    optimizer: { lr: 1e-4, beta1: 0.9, beta2: 0.99, eps: 1e-8, warmupSteps: 0, clipNorm: 0 },
    gradNorm: false,
  });
}
