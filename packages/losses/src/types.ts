/**
 * What the loss compares against: the noise `eps`, the clean image `x0`, or the velocity `v`.
 * Independent of what the network predicts (`PredictionType` from @matryoshka-ts/core; the
 * official configs predict `v` and take the loss against `eps`).
 */
export type LossTarget = 'eps' | 'x0' | 'v';
