import { totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '@matryoshka-ts/core';
import type { NestedUNetConfig } from '@matryoshka-ts/nested-unet';
import {
  COPIES_PER_PARAMETER,
  type MemoryPlan,
  type MemoryPlanConfig,
  checkTensorSizes,
  describeFields,
  formatBytes,
  formatCount,
  presetNote,
} from './tensor-sizes.js';

// The estimates themselves need no Node module (tensor-sizes.ts); this file checks them against
// this machine's memory.
export {
  COPIES_PER_PARAMETER,
  MAX_TENSOR_BYTES,
  MAX_TENSOR_ELEMENTS,
  checkTensorSizes,
  formatBytes,
  memoryPlan,
} from './tensor-sizes.js';
export type {
  MemoryPlan,
  MemoryPlanConfig,
  PhaseMemory,
  SizeField,
  TensorCheckOptions,
  TensorSize,
} from './tensor-sizes.js';

export interface MemoryCheckOptions {
  /** This machine's memory (default `os.totalmem()`). */
  machineBytes?: number;
  /** The active tfjs backend (default the engine's): all but `tensorflow` hold activations in typed arrays. */
  backend?: string;
}

/**
 * Refuses to start training a single model (an mdm or simple run, or one stage of a multi-stage
 * run) whose tensors cannot exist on the active backend (`checkTensorSizes` with activations), or
 * whose step's estimated memory (`memoryPlan`) exceeds this machine's, naming the fields that
 * drive it and both sizes. `train` runs it before any work. Returns the plan.
 */
export function checkTrainingMemory(
  config: MemoryPlanConfig,
  model: NestedUNetConfig,
  options: MemoryCheckOptions = {},
): MemoryPlan {
  const backend = options.backend ?? (tf.engine().backendName || undefined);
  const plan = checkTensorSizes(config, model, { activations: backend !== 'tensorflow', backend });
  const machine = options.machineBytes ?? totalmem();
  const p = plan.peak;
  if (p.totalBytes <= machine) return plan;
  const byActivations = p.activationBytes >= p.paramBytes;
  const level = p.largestLevel;
  const sizes =
    `parameters ${formatCount(p.params)} × ${COPIES_PER_PARAMETER} (weights, EMA, Adam m and v, gradients) = ` +
    `${formatBytes(p.paramBytes)}, activations ${formatBytes(p.activationBytes)}` +
    (byActivations ? `, most in ${p.heaviest.where}` : '');
  const driver = byActivations
    ? `${describeFields(p.heaviest.fields)}: lower phases.${p.phase}.batchSize or the resolution`
    : `${level.field} [${level.channels.join(', ')}] (the ${level.where} level holds ${formatCount(level.params)} ` +
      "parameters): lower the model's channels";
  throw new ConfigError(
    `config: ${presetNote(config)}phase ${p.phase + 1} needs about ${formatBytes(p.totalBytes)} of memory, ` +
      `more than this machine's ${formatBytes(machine)}: ${sizes}; driven by ${driver}`,
  );
}
