import { appendFileSync, renameSync, writeFileSync } from 'node:fs';
import { WriteError } from '@matryoshka-ts/core';

/**
 * Writes one file of a run (config.json, a sample grid, loss.svg, …). A failure (a full disk, no
 * permission) is a `WriteError` naming the file, which the CLIs print as one line: Node's own
 * error for `writeFileSync` says only "ENOSPC: no space left on device, write".
 */
export function writeRunFile(path: string, data: string | Uint8Array): void {
  try {
    writeFileSync(path, data);
  } catch (error) {
    throw new WriteError(path, error);
  }
}

/** Appends to a run's file (a metrics.jsonl line); a failure is a `WriteError` naming the file. */
export function appendRunFile(path: string, data: string): void {
  try {
    appendFileSync(path, data);
  } catch (error) {
    throw new WriteError(path, error);
  }
}

/** As `writeRunFile`, through `tmp` and a rename, so that a reader never sees part of the file. */
export function writeRunFileAtomic(path: string, data: string | Uint8Array, tmp = `${path}.tmp`): void {
  writeRunFile(tmp, data);
  try {
    renameSync(tmp, path);
  } catch (error) {
    throw new WriteError(path, error);
  }
}
