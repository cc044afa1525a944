import * as tf from '@tensorflow/tfjs-core';
import { adamUpdate } from '@matryoshka-ts/kernels';

/** Adam's hyper-parameters (the autoencoder's: β1 0.5, β2 0.9, as CompVis's `configure_optimizers`). */
export interface AdamOptions {
  beta1: number;
  beta2: number;
  eps: number;
}

/** Adam's state, for checkpoints: the update count and both moments by parameter name (copies). */
export interface AdamState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

/**
 * `torch.optim.Adam` (no weight decay, no AMSGrad): m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε), t counting updates from 1 (the formula of
 * `@matryoshka-ts/pipelines`' Adam, through the same `adamUpdate` kernel). Moments are created
 * at a parameter's first update, as PyTorch creates its state.
 */
export class Adam {
  /** Updates applied so far (t of the last update). */
  step = 0;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();

  constructor(readonly options: AdamOptions) {}

  /** One update of `params` by `grads` (same names; parameters without a gradient are left alone). */
  update(params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void {
    this.step += 1;
    const { beta1, beta2, eps } = this.options;
    const c1 = 1 - beta1 ** this.step;
    const c2 = Math.sqrt(1 - beta2 ** this.step);
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (!p) throw new Error(`Adam: gradient for '${name}', which is not among the parameters`);
      const m = slot(this.m, name, p);
      const v = slot(this.v, name, p);
      const [p1, m1, v1] = adamUpdate(p, g, m, v, { lr, beta1, beta2, eps, c1, c2 });
      m.assign(m1);
      v.assign(v1);
      p.assign(p1);
      tf.dispose([p1, m1, v1]);
    }
  }

  /**
   * PyTorch's `step()` when every gradient is zero (a loss multiplied by 0, as CompVis's
   * discriminator loss before `disc_start`): t advances and the moments decay. Parameters without
   * moments yet stay exactly as they are (m = v = 0 gives a zero step), so no kernel runs for them.
   */
  zeroGradientStep(params: Map<string, tf.Variable>, lr: number): void {
    const names = [...this.m.keys()].filter((name) => params.has(name));
    if (names.length === 0) {
      this.step += 1;
      return;
    }
    const zeros = new Map(names.map((name) => [name, tf.zerosLike(params.get(name)!)]));
    this.update(params, zeros, lr);
    tf.dispose([...zeros.values()]);
  }

  /** A copy of the state. */
  state(): AdamState {
    const read = (slots: Map<string, tf.Variable>) =>
      new Map([...slots].map(([name, s]) => [name, Float32Array.from(s.dataSync())]));
    return { step: this.step, m: read(this.m), v: read(this.v) };
  }

  /** Throws unless `state` fits `params`: a count, and moments only for parameters there, of their sizes. */
  validate(state: AdamState, params: Map<string, tf.Variable>): void {
    if (!Number.isInteger(state.step) || state.step < 0)
      throw new Error(`Adam state: step must be a non-negative integer, got ${state.step}`);
    for (const [kind, values] of [
      ['m', state.m],
      ['v', state.v],
    ] as const) {
      for (const [name, data] of values) {
        const p = params.get(name);
        if (!p) throw new Error(`Adam state: ${kind} for '${name}', which is not among the parameters`);
        if (data.length !== p.size)
          throw new Error(`Adam state: ${kind} of '${name}' has ${data.length} values for shape [${p.shape}]`);
      }
    }
  }

  /** Replaces the state with `state` (from `state()`), checked by `validate` first. */
  load(state: AdamState, params: Map<string, tf.Variable>): void {
    this.validate(state, params);
    this.dispose();
    this.step = state.step;
    for (const [slots, values] of [
      [this.m, state.m],
      [this.v, state.v],
    ] as const) {
      for (const [name, data] of values) {
        const t = tf.tensor(data, params.get(name)!.shape, 'float32');
        slots.set(name, tf.variable(t, false));
        t.dispose();
      }
    }
  }

  /** Frees the moments (the step count stays). */
  dispose(): void {
    for (const s of [...this.m.values(), ...this.v.values()]) s.dispose();
    this.m.clear();
    this.v.clear();
  }
}

function slot(slots: Map<string, tf.Variable>, name: string, like: tf.Tensor): tf.Variable {
  let s = slots.get(name);
  if (!s) {
    const zeros = tf.zerosLike(like);
    s = tf.variable(zeros, false);
    zeros.dispose();
    slots.set(name, s);
  }
  return s;
}
