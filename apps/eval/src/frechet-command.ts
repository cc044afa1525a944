import { existsSync, statSync } from 'node:fs';
import { type FrechetOptions, frechetDistance, readFidStats } from '@matryoshka-ts/metrics';
import { DataError } from '@matryoshka-ts/core';

export interface FrechetResult {
  fid: number;
  a: string;
  b: string;
  dim: number;
}

function load(path: string) {
  if (!existsSync(path)) throw new DataError(`no such file: ${path}`);
  if (!statSync(path).isFile()) throw new DataError(`not a file: ${path}`);
  return readFidStats(path);
}

/**
 * The Fréchet distance between the feature statistics in two .npz files (pytorch-fid's format:
 * `mu` of shape (d,), `sigma` of shape (d, d)). Paths are reported as given. Each file is checked
 * when read (`readFidStats`): finite values, and a sigma that is a covariance — symmetric and
 * positive semi-definite within float32 rounding — or a DataError names the file and the array.
 */
export function frechetCommand(a: string, b: string, options: FrechetOptions = {}): FrechetResult {
  const sa = load(a);
  const sb = load(b);
  if (sa.dim !== sb.dim)
    throw new DataError(`the statistics differ in dimension: ${a} has d = ${sa.dim}, ${b} has d = ${sb.dim}`);
  const fid = frechetDistance(sa.mu, sa.sigma, sb.mu, sb.sigma, options);
  // Valid but enormous statistics (|Σ| near 1e154 and beyond) overflow float64.
  if (!Number.isFinite(fid)) throw new DataError(`the Fréchet distance of ${a} and ${b} came out ${fid}`);
  return { fid, a, b, dim: sa.dim };
}
