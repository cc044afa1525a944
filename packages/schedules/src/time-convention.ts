/**
 * The official code's discrete time convention, in one place. A schedule's table holds ᾱ after k
 * of `steps` diffusion steps (`gammas[0] = 1`). The network receives a 0-based index i ∈ {0 …
 * steps−1}, which stands for table entry i + 1: training noises with `gammas[i + 1]`, and a
 * sampler at grid time t (γ_t = `gammas[t]`) feeds the network t − 1.
 */

/** The table entry (grid time) that the network's time index `i` stands for: i + 1. */
export function gridTimeOf(networkTime: number): number {
  return networkTime + 1;
}

/** The network's time index at grid time `t` (γ_t = gammas[t]): t − 1. */
export function networkTimeOf(gridTime: number): number {
  return gridTime - 1;
}
