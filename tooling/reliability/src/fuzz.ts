// Family `fuzz`: seeded mutations (bit flips, byte overwrites, truncation, extension, edits to
// length fields) of small safetensors, npz and tar files, each parsed in-process by every public
// reader. Equal content or an MdmError (naming the file, for readers given a path) survives;
// different content accepted is silent (for tar, changed member data coming out as exactly that
// data is what the format allows: counted apart); anything else is unclear, and so is a parse that
// takes over 5 s or more than 256 MB of memory at its peak. Each format runs in a child process
// (this file, `child` mode) so that a hang or a crash costs one trial, not the probe.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import { SafetensorsFile, decodeSafetensors, writeSafetensors } from '@matryoshka-ts/checkpoint';
import { MdmError } from '@matryoshka-ts/core';
import { type SkipCounts, readRange, scanTar } from '@matryoshka-ts/data';
import { crc32, decodeNpz, encodeNpy, readFidStats, readNpz, writeFidStats, writeZip } from '@matryoshka-ts/metrics';
import {
  type Context,
  type FamilyResult,
  REPO,
  Rng,
  type Trial,
  bytesOf,
  countLine,
  seconds,
  tagCounts,
} from './shared.js';

const FORMATS = ['safetensors', 'npz', 'tar'] as const;
type Format = (typeof FORMATS)[number];
const SLOW_MS = 5000;
const MEMORY_MB = 256;
/** With no result line for this long, the child is hung on one parse: it is killed and restarted after it. */
const HANG_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// Parent: one child per format, restarted after the trial that hung or crashed it.

export async function fuzzFamily(ctx: Context): Promise<FamilyResult> {
  const count = ctx.quick ? 200 : 2000;
  const trials: Trial[] = [];
  const notes: string[] = [];
  for (const format of FORMATS) {
    const started = performance.now();
    const ours: Trial[] = [];
    const dir = join(ctx.root, `fuzz-${format}`);
    mkdirSync(dir, { recursive: true });
    for (let from = 0; from < count; ) {
      let run: Awaited<ReturnType<typeof runChild>>;
      try {
        run = await runChild(format, ctx.seed, from, count, dir, (done) =>
          ctx.log(`fuzz ${format}: ${done}/${count} mutations`),
        );
      } catch (error) {
        ours.push({ outcome: 'unclear', detail: (error as Error).message, tag: 'probe failure' });
        break;
      }
      const { results, stoppedAt, why } = run;
      ours.push(...results);
      if (stoppedAt === undefined) break;
      const detail = `fuzz/${format}#${stoppedAt} seed=${ctx.seed}: ${why} (rerun: --only fuzz --seed ${ctx.seed})`;
      ours.push({ outcome: 'unclear', detail, tag: 'hang or crash' });
      from = stoppedAt + 1;
    }
    ctx.log(`fuzz ${format}: ${countLine(ours)} in ${seconds(performance.now() - started)}`);
    notes.push(`${format.padEnd(11)} ${countLine(ours)} (${tagCounts(ours)})`);
    trials.push(...ours);
  }
  return { name: 'fuzz', trials, notes };
}

function runChild(
  format: Format,
  seed: number,
  from: number,
  count: number,
  dir: string,
  progress: (done: number) => void,
): Promise<{ results: Trial[]; stoppedAt?: number; why?: string }> {
  const self = fileURLToPath(import.meta.url);
  const args = ['--conditions=source', '--import', 'tsx', '--max-old-space-size=1024', self, 'child'];
  const child = spawn(process.execPath, [...args, format, String(seed), String(from), String(count), dir], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const results: Trial[] = [];
  // The mutation being parsed: between its {start} and {end} lines.
  let current: number | undefined;
  let stderr = '';
  let buffer = '';
  let hung = false;
  let lastProgress = performance.now();
  let watchdog: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, HANG_MS);
  };
  arm();
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-2000)));
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    buffer += s;
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      let message: { start?: number; end?: number } & Partial<Trial>;
      try {
        message = JSON.parse(line);
      } catch {
        continue; // something else printed to stdout
      }
      arm();
      if (message.start !== undefined) current = message.start;
      else if (message.end !== undefined) current = undefined;
      else results.push(message as Trial);
      if (performance.now() - lastProgress > 10_000) {
        progress(current ?? from);
        lastProgress = performance.now();
      }
    }
  });
  return new Promise((done, fail) => {
    child.on('close', (code, signal) => {
      clearTimeout(watchdog);
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      if (current === undefined) {
        if (code === 0) return done({ results });
        // Died outside any parse (making the seed files): a probe bug, reported once.
        return fail(
          new Error(`fuzz ${format}: the child failed before parsing (${signal ?? `exit ${code}`}): ${tail}`),
        );
      }
      const why = hung
        ? `no result within ${HANG_MS / 1000} s (hang; child killed)`
        : `the parser process died (${signal ?? `exit ${code}`}): ${tail}`;
      done({ results, stoppedAt: current, why });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Child: seed files, mutations, readers, verdicts.

/** A file to mutate, with what the mutations should aim at. */
interface Seed {
  name: string;
  bytes: Uint8Array;
  /** Length fields: where, and how they are written. */
  fields: Field[];
  /** Mutations aim at [0, headerEnd) more often (the parser's logic lives there). */
  headerEnd?: number;
}

interface Field {
  at: number;
  width: number;
  kind: 'u16' | 'u32' | 'u64' | 'digits' | 'octal';
  /** What the field is, for the reproduction line. */
  what: string;
}

/** One public reader: a path or bytes in, a comparable value out. */
interface Reader {
  call: string;
  fromPath: boolean;
  read(path: string, bytes: Uint8Array): Promise<unknown> | unknown;
  /** How two results differ, or undefined when equal. */
  diff(a: unknown, b: unknown): string | undefined;
}

interface Mutated {
  bytes: Uint8Array;
  text: string;
  /** Byte positions changed in place (bit flips, overwrites): for tar's member-data rule. */
  changed?: number[];
  /** A tar header edited with its checksum recomputed: a valid header the format cannot tell from the original. */
  consistent?: boolean;
}

async function child(format: Format, seed: number, from: number, count: number, dir: string): Promise<void> {
  const rng = new Rng(seed, `fuzz/${format}/seeds`);
  const seeds =
    format === 'safetensors' ? safetensorsSeeds(dir, rng) : format === 'npz' ? npzSeeds(dir, rng) : tarSeeds();
  const readers = format === 'safetensors' ? SAFETENSORS : format === 'npz' ? NPZ : TAR;
  // Each reader's view of each unchanged seed.
  const originals = new Map<string, unknown>();
  for (const s of seeds) {
    const path = join(dir, s.name);
    writeFileSync(path, s.bytes);
    for (const r of readers) originals.set(`${s.name}/${r.call}`, await r.read(path, s.bytes));
  }
  for (let i = from; i < count; i++) {
    const s = seeds[i % seeds.length];
    const m = format === 'npz' && i === 0 ? await npzBomb() : mutate(s, new Rng(seed, `fuzz/${format}/${i}`), format);
    const path = join(dir, `mutated-${i}-${s.name}`);
    writeFileSync(path, m.bytes);
    console.log(JSON.stringify({ start: i }));
    for (const reader of readers) {
      const trial = await attempt(reader, path, m, originals.get(`${s.name}/${reader.call}`), s, format);
      trial.detail = `fuzz/${format}#${i} seed=${seed}: ${s.name}, ${m.text}; ${reader.call} → ${trial.detail}`;
      console.log(JSON.stringify(trial));
    }
    console.log(JSON.stringify({ end: i }));
    unlinkSync(path);
  }
}

/** Runs one reader on one mutated file under the time and memory watch, and judges the outcome. */
async function attempt(
  reader: Reader,
  path: string,
  m: Mutated,
  original: unknown,
  seed: Seed,
  format: Format,
): Promise<Trial> {
  const before = resetPeakMemory();
  const started = performance.now();
  let value: unknown;
  let error: unknown;
  try {
    value = await reader.read(path, m.bytes);
  } catch (e) {
    error = e;
  }
  const ms = performance.now() - started;
  const peakMb = peakMemoryMb() - before;
  if (ms > SLOW_MS) return { outcome: 'unclear', detail: `took ${seconds(ms)}`, tag: 'slow' };
  if (peakMb > MEMORY_MB) {
    const how = error ? `then ${(error as Error).name}` : 'then returned';
    return { outcome: 'unclear', detail: `peak memory +${Math.round(peakMb)} MB (${how})`, tag: 'memory' };
  }
  if (error !== undefined) {
    const message = String((error as Error)?.message ?? error).split('\n')[0];
    if (!(error instanceof MdmError))
      return { outcome: 'unclear', detail: `${(error as Error)?.name ?? typeof error}: ${message}`, tag: 'raw error' };
    if (reader.fromPath && !message.includes(path))
      return { outcome: 'unclear', detail: `error does not name the file: ${message}`, tag: 'vague error' };
    return { outcome: 'survived', detail: `${error.name}: ${message}`, tag: 'refused' };
  }
  const diff = reader.diff(value, original);
  if (!diff) return { outcome: 'survived', detail: 'same content', tag: 'same content' };
  if (format === 'tar') {
    const verdict = judgeTar(value as TarContent, original as TarContent, m, seed);
    if (verdict) return { ...verdict, detail: `${verdict.detail}: ${diff}` };
  }
  return { outcome: 'silent', detail: `accepted different content: ${diff}`, tag: 'accepted' };
}

/** Resets the kernel's peak-RSS mark for this process; returns the resident MB now. */
function resetPeakMemory(): number {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    /* no /proc: the peak is then measured from the process start (coarser, never lower) */
  }
  return statusMb('VmRSS');
}

function peakMemoryMb(): number {
  return statusMb('VmHWM') || process.memoryUsage().rss / 2 ** 20;
}

function statusMb(key: string): number {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    return Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations.

function mutate(seed: Seed, rng: Rng, format: Format): Mutated {
  const bytes = seed.bytes.slice();
  const position = () =>
    seed.headerEnd !== undefined && rng.float() < 0.6 ? rng.int(seed.headerEnd) : rng.int(bytes.length);
  const kind = rng.pick(['bit flip', 'bit flip', 'overwrite', 'overwrite', 'truncate', 'extend', 'length', 'length']);
  if (kind === 'bit flip') {
    const first = position();
    const changed = [first];
    for (let k = rng.int(3); k > 0; k--)
      changed.push(Math.min(bytes.length - 1, Math.max(0, first + rng.int(33) - 16)));
    const bits = changed.map((at) => {
      const bit = rng.int(8);
      bytes[at] ^= 1 << bit;
      return `${at}.${bit}`;
    });
    return { bytes, text: `bit flip at byte.bit ${bits.join(', ')}`, changed };
  }
  if (kind === 'overwrite') {
    const at = position();
    const n = Math.min(1 + rng.int(8), bytes.length - at);
    const changed: number[] = [];
    for (let k = 0; k < n; k++) {
      bytes[at + k] = rng.int(256);
      changed.push(at + k);
    }
    return { bytes, text: `${n} bytes at ${at} overwritten with ${hexOf(bytes.subarray(at, at + n))}`, changed };
  }
  if (kind === 'truncate') {
    // Tar: half the cuts at a block boundary, as a download stopped between members would leave it.
    const blocks = format === 'tar' && rng.float() < 0.5;
    const length = blocks ? 512 * rng.int(bytes.length / 512) : rng.int(bytes.length);
    return { bytes: bytes.subarray(0, length), text: `truncated to ${length} of ${bytes.length} bytes` };
  }
  if (kind === 'extend') {
    const n = 1 + rng.int(2048);
    const zeros = rng.float() < 0.5;
    const extra = new Uint8Array(n).map(() => (zeros ? 0 : rng.int(256)));
    const out = new Uint8Array(bytes.length + n);
    out.set(bytes);
    out.set(extra, bytes.length);
    return { bytes: out, text: `extended by ${n} ${zeros ? 'zero' : 'random'} bytes` };
  }
  const field = rng.pick(seed.fields);
  const text = editField(bytes, field, rng);
  // Tar headers carry a checksum; half the time it is fixed, so the edited size itself gets parsed.
  if (format === 'tar' && field.kind === 'octal' && rng.float() < 0.5) {
    const header = field.at - (field.at % 512);
    writeTarChecksum(bytes.subarray(header, header + 512));
    return { bytes, text: `${text} (header checksum fixed)`, consistent: true };
  }
  return { bytes, text };
}

/** Writes a new value into a length field: 0, 1, off by one, doubled, the largest, or random. */
function editField(bytes: Uint8Array, f: Field, rng: Rng): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (f.kind === 'digits' || f.kind === 'octal') {
    const text = Buffer.from(bytes.subarray(f.at, f.at + f.width)).toString('latin1');
    const base = f.kind === 'octal' ? 8 : 10;
    const old = Number.parseInt(text.replace(/\0/g, '').trim() || '0', base);
    const width = f.kind === 'octal' ? f.width - 1 : f.width;
    const value = rng.pick([0, 1, old - 1, old + 1, old * 2, base ** width - 1, rng.int(base ** width)]);
    const written = Math.max(0, value).toString(base).padStart(width, '0').slice(-width);
    bytes.set(Buffer.from(written, 'latin1'), f.at);
    return `${f.what} ${text.replace(/\0/g, '')} → ${written}`;
  }
  const max = f.kind === 'u16' ? 0xffff : f.kind === 'u32' ? 0xffffffff : Number.MAX_SAFE_INTEGER;
  const get = () =>
    f.kind === 'u16'
      ? view.getUint16(f.at, true)
      : f.kind === 'u32'
        ? view.getUint32(f.at, true)
        : Number(view.getBigUint64(f.at, true));
  const old = get();
  const value = Math.min(max, Math.max(0, rng.pick([0, 1, old - 1, old + 1, old * 2, max, rng.int(max)])));
  if (f.kind === 'u16') view.setUint16(f.at, value, true);
  else if (f.kind === 'u32') view.setUint32(f.at, value, true);
  else view.setBigUint64(f.at, rng.float() < 0.2 ? 2n ** 64n - 1n : BigInt(value), true);
  return `${f.what} ${old} → ${get()}`;
}

const hexOf = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

// ---------------------------------------------------------------------------------------------
// safetensors

function safetensorsSeeds(dir: string, rng: Rng): Seed[] {
  const values = (n: number) => Array.from({ length: n }, () => rng.float() * 4 - 2);
  const path = join(dir, 'seed.safetensors');
  writeSafetensors(
    path,
    {
      'block.0.weight': { dtype: 'F32', shape: [3, 4], data: values(12) },
      'block.0.bias': { dtype: 'F16', shape: [4], data: values(4) },
      'block.1.scale': { dtype: 'BF16', shape: [2, 3], data: values(6) },
      'embed.f64': { dtype: 'F64', shape: [3], data: values(3) },
      'index.i32': { dtype: 'I32', shape: [5], data: [0, 1, -2, 3, 70000] },
      'mask.u8': { dtype: 'U8', shape: [2, 2], data: [0, 1, 255, 7] },
      empty: { dtype: 'F32', shape: [0], data: [] },
    },
    { format: 'probe/1', note: 'fuzz seed' },
  );
  const bytes = new Uint8Array(readFileSync(path));
  const headerEnd = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const json = Buffer.from(bytes.subarray(8, headerEnd)).toString('latin1');
  const fields: Field[] = [{ at: 0, width: 8, kind: 'u64', what: 'header length (u64)' }];
  // Every number of every shape and data_offsets, edited in place with the same number of digits.
  for (const match of json.matchAll(/"(shape|data_offsets)":\[([\d,]*)\]/g)) {
    let at = 8 + match.index! + match[0].indexOf('[') + 1;
    for (const digits of match[2].split(',').filter(Boolean)) {
      fields.push({ at, width: digits.length, kind: 'digits', what: `${match[1]} number at ${at}` });
      at += digits.length + 1;
    }
  }
  return [{ name: 'seed.safetensors', bytes, fields, headerEnd }];
}

type SafetensorsContent = { metadata: Record<string, string>; tensors: Array<[string, string, string, Buffer]> };

function safetensorsContent(
  metadata: Record<string, string>,
  tensors: Iterable<[string, { dtype: string; shape: number[]; data: ArrayBufferView }]>,
): SafetensorsContent {
  const list = [...tensors].map(
    ([n, t]) => [n, t.dtype, t.shape.join('x'), bytesOf(t.data)] as [string, string, string, Buffer],
  );
  return { metadata, tensors: list.sort((a, b) => (a[0] < b[0] ? -1 : 1)) };
}

function diffSafetensors(a: unknown, b: unknown): string | undefined {
  const x = a as SafetensorsContent;
  const y = b as SafetensorsContent;
  for (const key of new Set([...Object.keys(x.metadata), ...Object.keys(y.metadata)])) {
    const [was, now] = [y.metadata[key], x.metadata[key]];
    if (was === now) continue;
    const show = (v: string) => JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    if (was === undefined) return `metadata key '${key}' added: ${show(now)}`;
    if (now === undefined) return `metadata key '${key}' missing`;
    return `metadata '${key}': ${show(was)} → ${show(now)}`;
  }
  if (x.tensors.length !== y.tensors.length) return `${x.tensors.length} tensors instead of ${y.tensors.length}`;
  for (let i = 0; i < x.tensors.length; i++) {
    const [name, dtype, shape, data] = x.tensors[i];
    const [name2, dtype2, shape2, data2] = y.tensors[i];
    if (name !== name2) return `tensor '${name}' instead of '${name2}'`;
    if (dtype !== dtype2 || shape !== shape2)
      return `tensor '${name}': ${dtype} [${shape}] instead of ${dtype2} [${shape2}]`;
    if (!data.equals(data2)) return `tensor '${name}': different values`;
  }
  return undefined;
}

const SAFETENSORS: Reader[] = [
  {
    call: 'SafetensorsFile.open(path) + read() of every tensor',
    fromPath: true,
    read(path) {
      const file = SafetensorsFile.open(path);
      try {
        return safetensorsContent(
          file.metadata,
          file.names.map((n) => [n, file.read(n)]),
        );
      } finally {
        file.close();
      }
    },
    diff: diffSafetensors,
  },
  {
    call: 'decodeSafetensors(bytes)',
    fromPath: false,
    read(_path, bytes) {
      const { tensors, metadata } = decodeSafetensors(bytes);
      return safetensorsContent(metadata, tensors);
    },
    diff: diffSafetensors,
  },
];

// ---------------------------------------------------------------------------------------------
// npz

function npzSeeds(dir: string, rng: Rng): Seed[] {
  const d = 4;
  const mu = Array.from({ length: d }, () => rng.float());
  // A valid covariance: symmetric, diagonally dominant.
  const off = Array.from({ length: d * d }, () => 0.1 * rng.float());
  const sigma = Array.from({ length: d * d }, (_, k) => {
    const [i, j] = [Math.floor(k / d), k % d];
    return i === j ? 1 : off[Math.min(i, j) * d + Math.max(i, j)];
  });
  const path = join(dir, 'seed-stored.npz');
  writeFidStats(path, { mu, sigma });
  const stored = new Uint8Array(readFileSync(path));
  // As np.savez_compressed writes it: the same arrays, deflated.
  const deflated = writeZip(
    [
      { name: 'mu.npy', data: encodeNpy({ dtype: 'float64', shape: [d], data: mu }) },
      { name: 'sigma.npy', data: encodeNpy({ dtype: 'float64', shape: [d, d], data: sigma }) },
    ],
    { deflate: true },
  );
  return [
    { name: 'stored.npz', bytes: stored, fields: zipFields(stored, true) },
    { name: 'deflated.npz', bytes: deflated, fields: zipFields(deflated, false) },
  ];
}

/** The length and offset fields of a zip written by writeZip (no comments, no ZIP64). */
function zipFields(bytes: Uint8Array, npyHeaders: boolean): Field[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length - 22;
  const fields: Field[] = [
    { at: end + 10, width: 2, kind: 'u16', what: 'end record: entries' },
    { at: end + 12, width: 4, kind: 'u32', what: 'end record: central directory size' },
    { at: end + 16, width: 4, kind: 'u32', what: 'end record: central directory offset' },
  ];
  let at = view.getUint32(end + 16, true);
  while (view.getUint32(at, true) === 0x02014b50) {
    const name = Buffer.from(bytes.subarray(at + 46, at + 46 + view.getUint16(at + 28, true))).toString();
    const local = view.getUint32(at + 42, true);
    const entry = (off: number, kind: 'u16' | 'u32', what: string) =>
      fields.push({ at: off, width: kind === 'u16' ? 2 : 4, kind, what: `${name}: ${what}` });
    entry(at + 20, 'u32', 'central compressed size');
    entry(at + 24, 'u32', 'central size');
    entry(at + 28, 'u16', 'central name length');
    entry(at + 30, 'u16', 'central extra length');
    entry(at + 42, 'u32', 'local header offset');
    entry(local + 18, 'u32', 'local compressed size');
    entry(local + 26, 'u16', 'local name length');
    entry(local + 28, 'u16', 'local extra length');
    const data = local + 30 + view.getUint16(local + 26, true);
    if (npyHeaders) entry(data + 8, 'u16', '.npy header length');
    at += 46 + view.getUint16(at + 28, true);
  }
  return fields;
}

/**
 * A zip bomb: mu.npy deflated from 512 MiB of zeros (about 0.5 MB in the file), its headers
 * claiming 128 bytes. A reader must refuse it without inflating it all.
 */
async function npzBomb(): Promise<Mutated> {
  const deflate = zlib.createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  deflate.on('data', (c: Buffer) => chunks.push(c));
  const zero = Buffer.alloc(1 << 20);
  for (let i = 0; i < 512; i++) if (!deflate.write(zero)) await new Promise((r) => deflate.once('drain', r));
  await new Promise((r) => deflate.end(r));
  const raw = new Uint8Array(Buffer.concat(chunks));
  // writeZip stores; rewrite its one member's method and sizes around the deflated stream.
  const zip = writeZip([{ name: 'mu.npy', data: raw }]);
  const view = new DataView(zip.buffer);
  const cd = view.getUint32(zip.length - 22 + 16, true);
  for (const [method, sizes] of [
    [8, 18],
    [cd + 10, cd + 20],
  ]) {
    view.setUint16(method, 8, true);
    view.setUint32(sizes + 4, 128, true); // uncompressed size: a lie
    view.setUint32(sizes - 4, crc32(new Uint8Array(128)), true);
  }
  return { bytes: zip, text: 'zip bomb: mu.npy inflates to 512 MiB, headers say 128 bytes' };
}

type NpzContent = Array<[string, string, string, Buffer]>;

function npzContent(arrays: Map<string, { dtype: string; shape: number[]; data: ArrayBufferView }>): NpzContent {
  return [...arrays].map(([k, a]) => [k, a.dtype, a.shape.join('x'), bytesOf(a.data)]);
}

function diffNpz(a: unknown, b: unknown): string | undefined {
  const x = a as NpzContent;
  const y = b as NpzContent;
  if (x.map((e) => e[0]).join() !== y.map((e) => e[0]).join()) return `keys ${x.map((e) => `'${e[0]}'`).join(', ')}`;
  for (let i = 0; i < x.length; i++) {
    if (x[i][1] !== y[i][1] || x[i][2] !== y[i][2]) return `array '${x[i][0]}': ${x[i][1]} (${x[i][2]})`;
    if (!x[i][3].equals(y[i][3])) return `array '${x[i][0]}': different values`;
  }
  return undefined;
}

const NPZ: Reader[] = [
  { call: 'readNpz(path)', fromPath: true, read: (path) => npzContent(readNpz(path)), diff: diffNpz },
  {
    call: 'readFidStats(path)',
    fromPath: true,
    read(path) {
      const s = readFidStats(path);
      return npzContent(
        new Map([
          ['mu', { dtype: 'float64', shape: [s.dim], data: s.mu }],
          ['sigma', { dtype: 'float64', shape: [s.dim, s.dim], data: s.sigma }],
        ]),
      );
    },
    diff: diffNpz,
  },
  { call: 'decodeNpz(bytes)', fromPath: false, read: (_path, bytes) => npzContent(decodeNpz(bytes)), diff: diffNpz },
];

// ---------------------------------------------------------------------------------------------
// tar

interface TarEntry {
  name: string;
  type?: string;
  data?: string | Uint8Array;
  prefix?: string;
}

/** A ustar archive (with a GNU long name and a pax path record), ended by two zero blocks. */
function tarSeeds(): Seed[] {
  const longName = `shard-00000/${'a-long-directory-name/'.repeat(6)}0002.jpg`;
  const image = new Uint8Array(700).map((_, i) => (i * 37) & 0xff);
  const entries: TarEntry[] = [
    { name: 'data/', type: '5' },
    { name: 'data/0001.jpg', data: image },
    { name: 'data/0001.txt', data: 'a red apple on a table' },
    { name: '././@LongLink', type: 'L', data: `${longName}\0` },
    { name: longName.slice(0, 100), data: 'long-named member' },
    { name: 'PaxHeader/0003', type: 'x', data: paxRecord('path', 'päx/0003.json') },
    { name: 'ignored-name', data: '{"caption":"pax"}' },
    { name: '0004.cls', prefix: 'deep/prefix', data: '7' },
    { name: 'empty.txt', data: '' },
  ];
  const blocks: Uint8Array[] = [];
  const fields: Field[] = [];
  let offset = 0;
  for (const e of entries) {
    const data = typeof e.data === 'string' ? new TextEncoder().encode(e.data) : (e.data ?? new Uint8Array(0));
    const header = new Uint8Array(512);
    const put = (at: number, text: string) => header.set(Buffer.from(text, 'utf8'), at);
    put(0, e.name);
    put(100, '0000644\0');
    put(108, '0000000\0');
    put(116, '0000000\0');
    put(124, `${data.length.toString(8).padStart(11, '0')}\0`);
    put(136, '00000000000\0');
    header[156] = (e.type ?? '0').charCodeAt(0);
    put(257, 'ustar\0');
    put(263, '00');
    if (e.prefix) put(345, e.prefix);
    writeTarChecksum(header);
    fields.push({ at: offset + 124, width: 12, kind: 'octal', what: `size field of '${e.name}'` });
    if (e.type === 'x') fields.push({ at: offset + 512, width: 2, kind: 'digits', what: 'pax record length' });
    blocks.push(header, data, new Uint8Array((512 - (data.length % 512)) % 512));
    offset += 512 + Math.ceil(data.length / 512) * 512;
  }
  blocks.push(new Uint8Array(1024));
  const bytes = new Uint8Array(Buffer.concat(blocks));
  return [{ name: 'seed.tar', bytes, fields }];
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let n = Buffer.byteLength(body) + 1;
  while (String(n).length + Buffer.byteLength(body) !== n) n++;
  return `${n}${body}`;
}

function writeTarChecksum(header: Uint8Array): void {
  header.fill(0x20, 148, 156);
  const sum = header.reduce((a, b) => a + b, 0);
  header.set(Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `, 'latin1'), 148);
}

interface TarContent {
  members: Array<{ name: string; offset: number; size: number; data: Buffer }>;
  skipped: SkipCounts;
}

const TAR: Reader[] = [
  {
    call: 'scanTar(path) + readRange() of every member',
    fromPath: true,
    async read(path) {
      const skipped: SkipCounts = {};
      const members: TarContent['members'] = [];
      for await (const m of scanTar(path, skipped)) {
        members.push({ ...m, data: Buffer.from(await readRange({ path, offset: m.offset, size: m.size })) });
      }
      return { members, skipped };
    },
    diff(a, b) {
      const x = a as TarContent;
      const y = b as TarContent;
      if (Object.keys(x.skipped).length)
        return `skipped ${JSON.stringify(x.skipped)} after ${x.members.length} members`;
      const names = (c: TarContent) => c.members.map((m) => m.name).join(', ');
      if (names(x) !== names(y)) {
        const short = x.members.map((m) => (m.name.length > 32 ? `…${m.name.slice(-24)}` : m.name));
        return `${x.members.length} of ${y.members.length} members (${short.join(', ') || 'none'}), no skip counted`;
      }
      const changed = x.members.find((m, i) => !m.data.equals(y.members[i].data));
      return changed ? `member '${changed.name}' has different data` : undefined;
    },
  },
];

/**
 * Tar's own rules for a different listing. A damaged archive counted in `skipped` is reported,
 * not accepted: survived. Bytes changed inside a member's data blocks and read back as exactly
 * those bytes, or inside a GNU long name or pax record (tar checksums neither), or a header edited with
 * its checksum fixed: what the format allows, counted apart. Undefined otherwise (silent).
 */
function judgeTar(value: TarContent, original: TarContent, m: Mutated, seed: Seed): Trial | undefined {
  if (Object.keys(value.skipped).length)
    return { outcome: 'survived', detail: 'damage reported', tag: 'damage reported' };
  if (m.consistent)
    return { outcome: 'survived', detail: 'valid edited header, read as written', tag: 'consistent header edit' };
  if (!m.changed) return undefined;
  // A member's data blocks: its data and the padding to the next 512-byte block (which tar ignores).
  const blocks = (o: { offset: number; size: number }) => o.offset + Math.ceil(o.size / 512) * 512;
  const inData = m.changed.every((at) => original.members.some((o) => at >= o.offset && at < blocks(o)));
  const asChanged =
    value.members.length === original.members.length &&
    value.members.every(
      (v, i) =>
        v.name === original.members[i].name &&
        v.data.equals(
          Buffer.from(
            m.bytes.subarray(original.members[i].offset, original.members[i].offset + original.members[i].size),
          ),
        ),
    );
  if (inData && asChanged)
    return { outcome: 'survived', detail: 'member data changed, read back as changed', tag: 'member data as changed' };
  // The data blocks of the 'L' and 'x' entries: after their headers, before the member they name.
  const metaBlocks = tarMetadataData(seed.bytes);
  if (m.changed.every((at) => metaBlocks.some(([b, e]) => at >= b && at < e)))
    return { outcome: 'survived', detail: 'long-name/pax data changed (no checksum)', tag: 'pax data changed' };
  return undefined;
}

/** [begin, end) of the data of every GNU long-name and pax entry in a tar. */
function tarMetadataData(bytes: Uint8Array): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let at = 0; at + 512 <= bytes.length; ) {
    const header = bytes.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const size = Number.parseInt(Buffer.from(header.subarray(124, 135)).toString('latin1'), 8) || 0;
    if (header[156] === 0x4c || header[156] === 0x78) out.push([at + 512, at + 512 + Math.ceil(size / 512) * 512]);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

if (process.argv[2] === 'child') {
  const [format, seed, from, count, dir] = process.argv.slice(3);
  child(format as Format, Number(seed), Number(from), Number(count), dir).catch((error) => {
    console.error(error);
    process.exit(2);
  });
}
