import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { DataError } from '@matryoshka-ts/core';
import { covarianceDefect } from './frechet.js';
import { type NpyArray, type NpyInput, decodeNpy, encodeNpy, npyDataStart, parseNpyHeader } from './npy.js';
import { printable } from './printable.js';
import { type ZipEntry, writeZip, zipEntries, zipEntryData, zipEntryHead } from './zip.js';

/**
 * numpy's .npz files: a zip of .npy files, one per array, the key being the member name without
 * `.npy` (`np.savez(path, mu=…, sigma=…)` → `mu.npy`, `sigma.npy`). Reads what `np.savez` and
 * `np.savez_compressed` write; writes uncompressed archives that `np.load` reads.
 */

/**
 * The arrays of an .npz file's bytes, by key. Every problem with the bytes is a DataError naming
 * the member or array concerned.
 */
export function decodeNpz(bytes: Uint8Array): Map<string, NpyArray> {
  const out = new Map<string, NpyArray>();
  for (const entry of zipEntries(bytes)) {
    const key = entry.name.endsWith('.npy') ? entry.name.slice(0, -4) : entry.name;
    try {
      if (out.has(key)) throw new DataError('two members hold it');
      if (entry.method === 8) checkDeclaredSize(entry);
      out.set(key, decodeNpy(zipEntryData(entry)));
    } catch (error) {
      if (!(error instanceof DataError)) throw error;
      throw new DataError(`array '${printable(key)}': ${error.message}`, { cause: error });
    }
  }
  return out;
}

/**
 * Refuses a deflated member whose .npy header disagrees with the size its zip entry declares.
 * Only the header is inflated for this, so a small file cannot make us allocate more than its
 * header says the array needs (inflating stops at the declared size).
 */
function checkDeclaredSize(entry: ZipEntry): void {
  const header = parseNpyHeader(zipEntryHead(entry, npyDataStart(zipEntryHead(entry, 12))));
  const total = header.dataStart + header.byteLength;
  if (total !== entry.size)
    throw new DataError(`its .npy header implies ${total} bytes, its zip entry declares ${entry.size}`);
}

/** The bytes of an .npz file holding these arrays (STORED, in the given order). */
export function encodeNpz(entries: ReadonlyMap<string, NpyInput> | Readonly<Record<string, NpyInput>>): Uint8Array {
  const list = entries instanceof Map ? [...entries] : Object.entries(entries);
  const members = list.map(([key, array]) => {
    if (key.length === 0) throw new RangeError('an .npz key cannot be empty');
    try {
      return { name: `${key}.npy`, data: encodeNpy(array) };
    } catch (error) {
      throw new Error(`array '${key}': ${(error as Error).message}`);
    }
  });
  return writeZip(members);
}

/** Reads every array of an .npz file. */
export function readNpz(path: string): Map<string, NpyArray> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    // A missing file, a directory, one over the 2 GiB that readFileSync reads, …
    throw new DataError(`${path}: cannot read it (${(error as Error).message})`, { cause: error });
  }
  try {
    return decodeNpz(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    if (!(error instanceof DataError)) throw error; // a bug: keep its stack
    throw new DataError(`${path}: ${error.message}`, { cause: error });
  }
}

/**
 * Writes an .npz file atomically: the archive goes to `<path>.tmp-<pid>`, is flushed to disk, and
 * is then renamed over `path`, so readers never see a half-written file.
 */
export function writeNpz(
  path: string,
  entries: ReadonlyMap<string, NpyInput> | Readonly<Record<string, NpyInput>>,
): void {
  writeFileAtomic(path, encodeNpz(entries));
}

function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    let done = 0;
    while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    removeQuietly(tmp);
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (error) {
    removeQuietly(tmp);
    throw error;
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}

/** Feature statistics as pytorch-fid stores them: mean `mu` (d) and covariance `sigma` (d×d, row-major). */
export interface FidStats {
  mu: Float64Array;
  sigma: Float64Array;
}

/**
 * Checks the `mu` and `sigma` arrays of an .npz file (pytorch-fid's statistics files: mu of
 * shape (d,), sigma of shape (d, d), float64 or float32) and returns them as float64. Refuses
 * non-finite values and a sigma that is not a covariance (`covarianceDefect`: ~2.5 s at d = 2048).
 */
export function fidStatsFromArrays(
  arrays: ReadonlyMap<string, NpyArray>,
  source = 'the statistics',
): FidStats & { dim: number } {
  const keys = [...arrays.keys()];
  const mu = arrays.get('mu');
  const sigma = arrays.get('sigma');
  if (!mu || !sigma) {
    const missing = ['mu', 'sigma'].filter((k) => !arrays.has(k)).join("' and '");
    throw new DataError(
      `${source} lack '${missing}' ` +
        `(keys found: ${keys.length ? keys.map((k) => `'${k}'`).join(', ') : 'none'}); ` +
        `FID statistics files hold 'mu' and 'sigma'`,
    );
  }
  if (mu.shape.length !== 1 || mu.shape[0] < 1)
    throw new DataError(`${source}: 'mu' must have shape (d,), got (${mu.shape.join(', ')})`);
  const d = mu.shape[0];
  if (sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) {
    throw new DataError(
      `${source}: 'sigma' must have shape (${d}, ${d}) to match 'mu' of shape (${d},), got (${sigma.shape.join(', ')})`,
    );
  }
  const k = mu.data.findIndex((v) => !Number.isFinite(v));
  if (k >= 0) throw new DataError(`${source}: 'mu' has a non-finite value (${mu.data[k]}) at [${k}]`);
  const defect = covarianceDefect(sigma.data, d);
  if (defect) throw new DataError(`${source}: 'sigma' ${defect}`);
  return { mu: Float64Array.from(mu.data), sigma: Float64Array.from(sigma.data), dim: d };
}

/** Reads a pytorch-fid statistics file (`mu`, `sigma`), checking the shapes. */
export function readFidStats(path: string): FidStats & { dim: number } {
  return fidStatsFromArrays(readNpz(path), path);
}

/** Writes `mu` (d) and `sigma` (d×d row-major) as float64 arrays in a pytorch-fid statistics file (atomically). */
export function writeFidStats(path: string, stats: { mu: ArrayLike<number>; sigma: ArrayLike<number> }): void {
  const d = stats.mu.length;
  if (d < 1) throw new RangeError('mu is empty');
  if (stats.sigma.length !== d * d)
    throw new RangeError(`sigma has ${stats.sigma.length} values, expected ${d}×${d} = ${d * d} for mu of length ${d}`);
  writeNpz(path, {
    mu: { dtype: 'float64', shape: [d], data: Float64Array.from(stats.mu) },
    sigma: { dtype: 'float64', shape: [d, d], data: Float64Array.from(stats.sigma) },
  });
}
