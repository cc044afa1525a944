import {
  closeSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import { WriteError } from '@matryoshka-ts/core';
import { crc32, crcHex } from './checksums.js';
import { SafetensorsError, type TensorEntry, decodeElements, encodeElements } from './dtypes.js';
import {
  type SafetensorsHeader,
  type TensorInfo,
  type TensorToWrite,
  headerLength,
  parseHeader,
  planWrite,
  verifyTensor,
} from './safetensors-bytes.js';

// The in-memory format (no Node module) is safetensors-bytes.ts; this file adds the file I/O.
export {
  decodeSafetensors,
  encodeSafetensors,
  headerLength,
  parseHeader,
  type SafetensorsHeader,
  type TensorInfo,
  type TensorToWrite,
} from './safetensors-bytes.js';

/** Positional reads and writes go in pieces below Node's 2 GiB per-call limit. */
const IO_CHUNK = 1 << 30;

/**
 * A safetensors file opened for random access: the header is read once, each tensor on demand
 * with positional reads, so files far larger than memory (or than 2 GiB) work.
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fd: number | null,
    readonly header: SafetensorsHeader,
  ) {}

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'CHECKPOINT_MISSING' : 'CHECKPOINT_INVALID';
      throw new SafetensorsError(`cannot open (${(error as Error).message})`, path, { code, cause: error });
    }
    try {
      const size = fstatSync(fd).size;
      const first8 = new Uint8Array(8);
      readFully(fd, first8, 0, path);
      const n = headerLength(first8, size, path);
      const json = new Uint8Array(n);
      readFully(fd, json, 8, path);
      return new SafetensorsFile(path, fd, parseHeader(json, size, path));
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  get names(): string[] {
    return [...this.header.tensors.keys()];
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new SafetensorsError(`no tensor named '${name}'`, this.path);
    return info;
  }

  /** Reads and decodes one tensor. */
  read(name: string): TensorEntry {
    if (this.fd === null) throw new SafetensorsError('file is closed', this.path);
    const info = this.info(name);
    const size = info.end - info.begin;
    if (size > bufferConstants.MAX_LENGTH) {
      throw new SafetensorsError(
        `tensor '${name}' is ${gb(size)}: more than one array can hold here (${gb(bufferConstants.MAX_LENGTH)})`,
        this.path,
      );
    }
    const bytes = new Uint8Array(size);
    readFully(this.fd, bytes, info.begin, this.path);
    verifyTensor(name, info, bytes, this.path);
    const count = info.shape.reduce((a, d) => a * d, 1);
    return { dtype: info.dtype, shape: info.shape, data: decodeElements(info.dtype, bytes, count) };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;

function readFully(fd: number, into: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < into.byteLength) {
    const want = Math.min(IO_CHUNK, into.byteLength - done);
    const got = readSync(fd, into, done, want, position + done);
    if (got === 0) throw new SafetensorsError(`file ends early at byte ${position + done}`, path);
    done += got;
  }
}

/**
 * Writes a safetensors file atomically: tensors are streamed one at a time into `<path>.tmp-<pid>`
 * (each one's CRC-32 taken on the way; the header, written first with placeholders of the same
 * length, is rewritten with them at the end), which is flushed to disk and then renamed over
 * `path`, so a crash never leaves a half-written file in place of the last good one.
 */
export function writeSafetensors(
  path: string,
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  const { entries, prefix } = planWrite(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (error) {
    throw new WriteError(tmp, error);
  }
  try {
    const placeholder = prefix(Object.fromEntries(entries.map(([name]) => [name, '00000000'])));
    writeFully(fd, placeholder, 0);
    const crcs: Record<string, string> = {};
    let at = placeholder.byteLength;
    for (const [name, t] of entries) {
      const bytes = encodeElements(t.dtype, t.data as ArrayLike<number | bigint>);
      crcs[name] = crcHex(crc32(bytes));
      writeFully(fd, bytes, at);
      at += bytes.byteLength;
    }
    writeFully(fd, prefix(crcs), 0);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    // A full disk (ENOSPC) reports no path: name the file; the last good one is untouched.
    throw new WriteError(path, error);
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (error) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw error;
  }
  removeOrphanTemps(path);
}

/**
 * Removes `<path>.tmp-<pid>` files left by writers that were killed mid-write (their process is
 * gone); a live process's temp file is left alone. Called after each successful write.
 */
export function removeOrphanTemps(path: string): string[] {
  const dir = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || processAlive(pid)) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(join(dir, name));
    } catch {
      /* removed by someone else */
    }
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as { code?: string }).code === 'EPERM';
  }
}

function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += writeSync(fd, bytes, done, Math.min(IO_CHUNK, bytes.byteLength - done), position + done);
  }
}

/** Reads a whole safetensors file into memory through positional reads (any size that fits). */
export function readSafetensors(path: string): { tensors: Map<string, TensorEntry>; metadata: Record<string, string> } {
  const file = SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, TensorEntry>();
    for (const name of file.names) tensors.set(name, file.read(name));
    return { tensors, metadata: file.metadata };
  } finally {
    file.close();
  }
}

export type { TensorData } from './dtypes.js';
