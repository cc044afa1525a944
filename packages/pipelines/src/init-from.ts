import { ConfigError } from '@matryoshka-ts/core';
import type { ParamSpec } from '@matryoshka-ts/core';
import { resolveConfig } from '@matryoshka-ts/nested-unet';
import { parseTrainConfig, modelConfigOf } from './config.js';
import { nestDeeper, phaseLevel, phaseModelConfig } from './phases.js';
import { loadCheckpoint } from './run-checkpoint.js';
import { runCheckpointPath } from './open-run.js';

/** Weights of a trained run, renamed for the inside of a larger model: what `initFrom` starts from. */
export interface InitialWeights {
  params: Map<string, Float32Array>;
  ema: Map<string, Float32Array>;
  /** One line for the log: where the weights came from and where they went. */
  description: string;
}

/**
 * The weights and EMA of a trained run (a run directory or checkpoint file) as the innermost
 * levels of a model with `specs` and `levels` levels — the paper's progressive training across
 * runs: a 64 px image run initialises the image UNet inside a 16×64 video model. The run's model
 * must be exactly the inside of ours (every name and shape); ours may hold more (the outer levels,
 * which keep their initial values).
 */
export function weightsFromRun(path: string, specs: readonly ParamSpec[], levels: number): InitialWeights {
  const file = runCheckpointPath(path);
  // Weights and EMA only: the optimizer state (twice the weights) is not needed.
  const ckpt = loadCheckpoint(file, { groups: ['params', 'ema'] });
  const config = parseTrainConfig(ckpt.config);
  const full = modelConfigOf(config);
  const phase = config.phases[ckpt.progress.phase];
  const theirs = resolveConfig(phaseModelConfig(full, phaseLevel(full, phase, ckpt.progress.phase))).levels;
  const added = levels - theirs.length;
  if (added < 0) {
    throw new ConfigError(
      `initFrom: ${file} holds a model of ${theirs.length} levels, more than the ${levels} being trained`,
    );
  }
  const shapes = new Map(specs.map((s) => [s.name, s.shape.join()]));
  const params = nestDeeper(ckpt.values.params, added);
  const ema = nestDeeper(ckpt.values.ema.size ? ckpt.values.ema : ckpt.values.params, added);
  const wrong: string[] = [];
  for (const [name, values] of params) {
    const shape = shapes.get(name);
    const theirShape = ckpt.shapes.get(name.slice('inner_unet.'.repeat(added).length));
    if (shape === undefined) wrong.push(`${name} (not in this model)`);
    else if (theirShape && theirShape.join() !== shape) wrong.push(`${name} [${theirShape}] (this model: [${shape}])`);
    else if (values.length === 0) wrong.push(`${name} (empty)`);
  }
  if (params.size === 0)
    throw new ConfigError(`initFrom: ${file} holds no raw weights (a snapshot keeps only the EMA)`);
  if (wrong.length) {
    throw new ConfigError(
      `initFrom: ${file} is not the inside of this model (${wrong.length} weights do not fit): ` +
        `${wrong.slice(0, 8).join(', ')}${wrong.length > 8 ? ', …' : ''}`,
    );
  }
  const top = theirs[0];
  return {
    params,
    ema,
    description:
      `initialised from ${file} (step ${ckpt.progress.step}): its ${top.frames > 1 ? `${top.frames}×` : ''}` +
      `${top.resolution} px model is levels ${added}…${levels - 1} of this one, EMA included`,
  };
}
