import * as tf from '@tensorflow/tfjs-core';
import { adamUpdate } from '@matryoshka-ts/kernels';

/** Adam hyper-parameters (the paper's Appendix B defaults: β1 0.9, β2 0.99, ε 1e-8). */
export interface AdamOptions {
  beta1: number;
  beta2: number;
  eps: number;
}

/**
 * Adam as PyTorch computes it: m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε). Its state is plain tensors keyed by parameter
 * name, so a checkpoint stores and restores it exactly.
 */
export class Adam {
  /** Number of updates applied so far (t in the bias corrections). */
  step = 0;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();

  constructor(readonly options: AdamOptions) {}

  /** Applies one update with learning rate `lr` to `params` given `grads` (same keys). */
  update(params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void {
    this.step += 1;
    const { beta1, beta2, eps } = this.options;
    const c1 = 1 - beta1 ** this.step;
    const c2 = Math.sqrt(1 - beta2 ** this.step);
    for (const [name, g] of grads) {
      const p = params.get(name)!;
      const m = this.slot(this.m, name, p);
      const v = this.slot(this.v, name, p);
      // One fused kernel on `native`, the same formula in tfjs ops elsewhere.
      const [p1, m1, v1] = adamUpdate(p, g, m, v, { lr, beta1, beta2, eps, c1, c2 });
      m.assign(m1);
      v.assign(v1);
      p.assign(p1);
      tf.dispose([p1, m1, v1]);
    }
  }

  private slot(slots: Map<string, tf.Variable>, name: string, like: tf.Tensor): tf.Variable {
    let s = slots.get(name);
    if (!s) {
      s = tf.variable(tf.zerosLike(like), false);
      slots.set(name, s);
    }
    return s;
  }

  /** Replaces the state (from a checkpoint). */
  load(step: number, m: Map<string, Float32Array>, v: Map<string, Float32Array>, shapes: Map<string, number[]>): void {
    this.dispose();
    this.step = step;
    for (const [slots, values] of [
      [this.m, m],
      [this.v, v],
    ] as const) {
      for (const [name, data] of values) slots.set(name, tf.variable(tf.tensor(data, shapes.get(name)!), false));
    }
  }

  dispose(): void {
    for (const s of [...this.m.values(), ...this.v.values()]) s.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** Global L2 norm of all gradients, read asynchronously (one read; every backend, WebGPU in Node too). */
export async function globalNorm(grads: Iterable<tf.Tensor>): Promise<number> {
  const squares = tf.tidy(() => tf.addN([...grads].map((g) => tf.sum(tf.square(g)))));
  const [sum] = await squares.data();
  squares.dispose();
  return Math.sqrt(sum);
}

/** Scales gradients in place (new tensors, old ones disposed) so their global norm is at most `maxNorm`. */
export function clipByGlobalNorm(grads: Map<string, tf.Tensor>, norm: number, maxNorm: number): void {
  if (!(maxNorm > 0) || norm <= maxNorm) return;
  const scale = maxNorm / (norm + 1e-6);
  for (const [name, g] of grads) {
    grads.set(name, tf.mul(g, scale));
    g.dispose();
  }
}

/** A cosine fall of the learning rate after warm-up, to `floor`·lr at update `steps`. */
export interface LrDecay {
  steps: number;
  floor: number;
}

/**
 * Learning rate at update `step` (1-based): linear warm-up from 0, then constant (as the official
 * code) or, with `decay`, lr·(floor + (1 − floor)·½(1 + cos πp)) where p runs from 0 at the end of
 * the warm-up to 1 at `decay.steps`.
 */
export function learningRate(step: number, lr: number, warmupSteps: number, decay?: LrDecay): number {
  if (warmupSteps > 0 && step < warmupSteps) return (lr * step) / warmupSteps;
  if (!decay) return lr;
  const p = Math.min(1, Math.max(0, (step - warmupSteps) / Math.max(1, decay.steps - warmupSteps)));
  return lr * (decay.floor + (1 - decay.floor) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

/** EMA decay at update `n` (1-based): `decay`, or with warm-up min(decay, (1 + n)/(10 + n)). */
export function emaDecay(n: number, decay: number, warmup: boolean): number {
  return warmup ? Math.min(decay, (1 + n) / (10 + n)) : decay;
}

/** ema ← d·ema + (1 − d)·param for every parameter. */
export function updateEma(ema: Map<string, tf.Variable>, params: Map<string, tf.Variable>, d: number): void {
  for (const [name, e] of ema) {
    const p = params.get(name)!;
    tf.tidy(() => e.assign(tf.add(tf.mul(e, d), tf.mul(p, 1 - d))));
  }
}
