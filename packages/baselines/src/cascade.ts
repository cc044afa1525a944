import { ConfigError } from '@matryoshka-ts/core';
import { type NestedUNetConfig, resolveConfig } from '@matryoshka-ts/nested-unet';

/**
 * The stages of a cascade (the paper's Appendix D.1 baseline): a base model at the lowest
 * resolution, then super-resolution stages, each conditioned on the previous stage's output
 * (`lowResCondition`). Returns every stage's top resolution, base first; a stage whose input is
 * not the previous stage's output size, or that is not an upsampler, is refused here, before any
 * training.
 */
export function cascadeResolutions(base: NestedUNetConfig, upsamplers: readonly NestedUNetConfig[]): number[] {
  if (upsamplers.length === 0) throw new ConfigError('cascade: needs at least one super-resolution stage');
  if (base.lowResCondition) throw new ConfigError('cascade: the base stage cannot be a super-resolution stage');
  const resolutions = [resolveConfig(base).levels[0].resolution];
  upsamplers.forEach((stage, i) => {
    const resolved = resolveConfig(stage);
    const r = resolved.levels[0].resolution;
    const previous = resolutions[resolutions.length - 1];
    if (!resolved.lowResCondition)
      throw new ConfigError(`cascade: stage ${i + 1} (${r} px) must set lowResCondition (it upsamples ${previous} px)`);
    if (r <= previous) {
      throw new ConfigError(
        `cascade: stage ${i + 1} is ${r} px but its base resolution is ${previous} px: ` +
          'each stage must upsample the one before it',
      );
    }
    if (resolved.imageChannels !== resolveConfig(base).imageChannels)
      throw new ConfigError(`cascade: stage ${i + 1} has ${resolved.imageChannels} image channels, the base another`);
    resolutions.push(r);
  });
  return resolutions;
}
