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
import { MdmError } from '@matryoshka-ts/core';
import { type Context, type FamilyResult, REPO, Rng, type Trial, countLine, seconds, tagCounts } from './shared.js';
import type { Field, Mutated, Reader, Seed } from './fuzz-types.js';
import { NPZ, npzBomb, npzSeeds } from './fuzz-npz.js';
import { SAFETENSORS, safetensorsSeeds } from './fuzz-safetensors.js';
import { TAR, type TarContent, judgeTar, tarSeeds, writeTarChecksum } from './fuzz-tar.js';

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
    seed.headerEnd !== undefined && rng.uniform() < 0.6 ? rng.int(seed.headerEnd) : rng.int(bytes.length);
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
    const blocks = format === 'tar' && rng.uniform() < 0.5;
    const length = blocks ? 512 * rng.int(bytes.length / 512) : rng.int(bytes.length);
    return { bytes: bytes.subarray(0, length), text: `truncated to ${length} of ${bytes.length} bytes` };
  }
  if (kind === 'extend') {
    const n = 1 + rng.int(2048);
    const zeros = rng.uniform() < 0.5;
    const extra = new Uint8Array(n).map(() => (zeros ? 0 : rng.int(256)));
    const out = new Uint8Array(bytes.length + n);
    out.set(bytes);
    out.set(extra, bytes.length);
    return { bytes: out, text: `extended by ${n} ${zeros ? 'zero' : 'random'} bytes` };
  }
  const field = rng.pick(seed.fields);
  const text = editField(bytes, field, rng);
  // Tar headers carry a checksum; half the time it is fixed, so the edited size itself gets parsed.
  if (format === 'tar' && field.kind === 'octal' && rng.uniform() < 0.5) {
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
  else view.setBigUint64(f.at, rng.uniform() < 0.2 ? 2n ** 64n - 1n : BigInt(value), true);
  return `${f.what} ${old} → ${get()}`;
}

const hexOf = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

if (process.argv[2] === 'child') {
  const [format, seed, from, count, dir] = process.argv.slice(3);
  child(format as Format, Number(seed), Number(from), Number(count), dir).catch((error) => {
    console.error(error);
    process.exit(2);
  });
}
