import * as tf from '@tensorflow/tfjs-core';
import { networkTimeOf } from '@matryoshka-ts/schedules';
import { clipRowsToFrames, framesToClipRows } from '@matryoshka-ts/core';

/**
 * The network as the samplers see it: noisy images of every level (NHWC, level 0 = highest
 * resolution first) at grid time t → the network's prediction for every level (same shapes; an
 * ε-, x0- or v-prediction, see the sampler's `predictionType`). Grid time t means γ_t = table[t]
 * of each level's schedule. The inputs stay the caller's; the outputs are new tensors that the
 * sampler disposes.
 *
 * A network trained in the official discrete convention (training index t ↔ table[t + 1]) is
 * called with time index t − 1 at grid time t: that offset belongs to the adapter that wraps the
 * model (`networkDenoiser`), not to the samplers.
 */
export type Denoiser = (x: tf.Tensor4D[], t: number) => tf.Tensor4D[];

/** Runs a network: images per level (NHWC, level 0 first) and one time input per sample → one prediction per level. */
export type NetworkRun = (x: tf.Tensor4D[], times: number[]) => tf.Tensor4D[];

export interface NetworkDenoiserOptions {
  /** Grid time → the network's time input (default `officialNetworkTime`: t − 1). */
  networkTime?: (t: number) => number;
}

/**
 * The official discrete convention (`networkTimeOf` in @matryoshka-ts/schedules): at grid time t the network
 * receives t − 1.
 */
export function officialNetworkTime(t: number): number {
  return networkTimeOf(t);
}

/**
 * Wraps a network into a `Denoiser`: every sample of the batch (the innermost level's batch
 * size) gets the time input `networkTime(t)`, by default t − 1.
 */
export function networkDenoiser(run: NetworkRun, options: NetworkDenoiserOptions = {}): Denoiser {
  const networkTime = options.networkTime ?? officialNetworkTime;
  return (x, t) => {
    if (x.length === 0) throw new Error('the denoiser needs at least one level');
    const batch = x[x.length - 1].shape[0];
    return run(x, new Array<number>(batch).fill(networkTime(t)));
  };
}

/**
 * A video network for the samplers: they hold each clip as one sample, [B, F·r, r, C] (so a
 * dynamic threshold takes its quantile over the whole clip, as the official code's tiled clip
 * image), while the network takes its frames in the batch, [B·F, r, r, C]. `frames` per level.
 */
export function clipRowsNetwork(run: NetworkRun, frames: readonly number[]): NetworkRun {
  if (frames.every((f) => f === 1)) return run;
  return (x, times) =>
    tf.tidy(() =>
      run(
        x.map((t, n) => clipRowsToFrames(t, frames[n])),
        times,
      ).map((o, n) => framesToClipRows(o, frames[n])),
    );
}

/** Classifier-free guidance of one prediction (any layout): pred_uncond + w·(pred_cond − pred_uncond). */
export function combineGuidance<T extends tf.Tensor>(uncond: T, cond: T, weight: number): T {
  return tf.tidy(() => tf.add(uncond, tf.mul(weight, tf.sub(cond, uncond))) as T);
}

/**
 * Classifier-free guidance as a `Denoiser`. `doubled` runs the network once on a doubled batch:
 * it receives images [x; x] at every level and must condition its first half on the
 * unconditional input and its second half on the condition (the caller arranges
 * [uncond; cond] text or labels). Every level's output is split into those halves and combined
 * with weight w (the official code guides every level, not only level 0).
 */
export function classifierFreeGuidance(doubled: Denoiser, weight: number): Denoiser {
  if (!Number.isFinite(weight)) throw new RangeError(`guidance weight must be finite, got ${weight}`);
  return (x, t) =>
    tf.tidy(() => {
      const outputs = doubled(
        x.map((level) => tf.concat([level, level], 0) as tf.Tensor4D),
        t,
      );
      if (outputs.length !== x.length)
        throw new Error(`the guided network returned ${outputs.length} levels for ${x.length} inputs`);
      return outputs.map((out, n) => {
        const batch = x[n].shape[0];
        if (out.shape[0] !== 2 * batch)
          throw new Error(`level ${n}: the guided network returned ${out.shape[0]} samples, expected 2·${batch}`);
        const [uncond, cond] = tf.split(out, 2, 0) as [tf.Tensor4D, tf.Tensor4D];
        return combineGuidance(uncond, cond, weight);
      });
    });
}
