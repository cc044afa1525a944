// Family `corrupt`: change seeded bytes of a trained micro checkpoint (its header, or one tensor's
// data), then `mdm-train sample` from it, or `--resume` it for 2 more steps. Survived: refused in
// one line naming the file (and the tensor, for changed data), or, for a change that does not alter
// what is read (JSON whitespace), the same output as the clean checkpoint. Exit 0 with changed data
// is silent: a changed checkpoint used without complaint. An all-NaN weight tensor (written
// properly, checksums and all) must be refused naming the tensor.
import { cpSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, readSafetensors, writeSafetensors } from '@matryoshka-ts/checkpoint';
import {
  CLI_LIMITS,
  type CommandResult,
  type Context,
  type FamilyResult,
  type Rng,
  STEPS,
  type Trial,
  compareRuns,
  failureOf,
  pool,
  runNode,
  tagCounts,
  trainerCli,
} from './shared.js';

type Command = 'sample' | 'resume';

interface Mutation {
  /** One line: what changed where. */
  text: string;
  /** The tensor whose data changed (the message must name it). */
  tensor?: string;
  /** True when the change cannot alter what is read (JSON whitespace). */
  immaterial?: boolean;
}

export async function corruptFamily(ctx: Context): Promise<FamilyResult> {
  const ref = await ctx.reference();
  const base = join(ctx.root, 'corrupt-base');
  cpSync(ref.dir, base, { recursive: true });
  const file = SafetensorsFile.open(join(base, 'checkpoint.safetensors'));
  const layout = { dataStart: file.header.dataStart, tensors: [...file.header.tensors] };
  file.close();

  // What the clean checkpoint gives, for comparison.
  const clean = {
    sample: join(ctx.root, 'corrupt-clean-sample'),
    resume: join(ctx.root, 'corrupt-clean-resume'),
  };
  for (const command of ['sample', 'resume'] as const) {
    cpSync(base, clean[command], { recursive: true });
    const result = await runNode(commandArgs(ctx, command, clean[command]), CLI_LIMITS);
    if (result.code !== 0)
      throw new Error(`${command} of the clean checkpoint failed: ${failureOf(result, 'mdm-train').line}`);
  }

  const count = ctx.quick ? 8 : 80;
  let done = 0;
  const tasks = Array.from({ length: count }, (_, i) => async () => {
    const rng = ctx.rng(`corrupt/${i}`);
    const command: Command = rng.uniform() < 0.7 ? 'sample' : 'resume';
    const dir = join(ctx.root, `corrupt-${i}`);
    cpSync(base, dir, { recursive: true });
    const mutation = mutate(join(dir, 'checkpoint.safetensors'), layout, rng, command);
    const trial = await judge(ctx, `corrupt#${i}`, command, dir, mutation, clean[command]);
    rmSync(dir, { recursive: true, force: true }); // 80 copies of a 5 MB run add up
    ctx.log(`corrupt ${++done}/${count}: ${trial.outcome}: ${trial.detail}`);
    return trial;
  });
  // All-NaN weights, written as a proper file: the sampler must refuse them, naming the tensor.
  const nanCases = ctx.quick ? (['ema'] as const) : (['ema', 'model'] as const);
  const nanTasks = nanCases.map((group, k) => async () => {
    const dir = join(ctx.root, `corrupt-nan-${group}`);
    cpSync(base, dir, { recursive: true });
    const names = layout.tensors.map(([name]) => name).filter((n) => n.startsWith(`${group}/`));
    const tensor = ctx.rng(`corrupt/nan/${k}`).pick(names);
    writeNaN(join(dir, 'checkpoint.safetensors'), tensor);
    const mutation = { text: `every value of ${tensor} set to NaN (rewritten with writeSafetensors)`, tensor };
    const extra = group === 'model' ? ['--no-ema'] : [];
    const trial = await judge(ctx, `corrupt-nan#${k}`, 'sample', dir, mutation, clean.sample, extra);
    ctx.log(`corrupt NaN ${group}: ${trial.outcome}: ${trial.detail}`);
    return trial;
  });
  const trials = await pool([...tasks, ...nanTasks], 2);
  return { name: 'corrupt', trials, notes: [`outcomes: ${tagCounts(trials)}`] };
}

function commandArgs(ctx: Context, command: Command, dir: string, extra: string[] = []): string[] {
  const backend = ['--backend', ctx.backend];
  if (command === 'resume') return trainerCli('train', '--resume', dir, '--steps', String(STEPS + 2), ...backend);
  const out = join(dir, 'probe.png');
  return trainerCli('sample', '--run', dir, '--n', '1', '--steps', '2', '--out', out, ...backend, ...extra);
}

/**
 * Changes the file in place. `sample` reads only the EMA weights, so its data changes go there;
 * `--resume` reads every tensor.
 */
function mutate(
  path: string,
  layout: { dataStart: number; tensors: Array<[string, { begin: number; end: number }]> },
  rng: Rng,
  command: Command,
): Mutation {
  const bytes = new Uint8Array(readFileSync(path));
  const kind = rng.pick([
    'header-byte',
    'header-byte',
    'header-bit',
    'header-pad',
    'data-bit',
    'data-bit',
    'data-bit',
    'data-bytes',
    'data-bytes',
    'truncate',
  ]);
  const write = () => writeFileSync(path, bytes);
  if (kind === 'truncate') {
    const at = rng.int(bytes.length);
    truncateSync(path, at);
    return { text: `truncated to ${at} of ${bytes.length} bytes` };
  }
  if (kind === 'header-pad') {
    // The writer pads the JSON with spaces; another whitespace there leaves the JSON the same.
    let pad = layout.dataStart - 1;
    while (bytes[pad - 1] === 0x20) pad--;
    if (bytes[pad] === 0x20) {
      const at = pad + rng.int(layout.dataStart - pad);
      bytes[at] = rng.pick([0x09, 0x0a, 0x0d]);
      write();
      return { text: `header padding byte ${at}: space → 0x${bytes[at].toString(16)}`, immaterial: true };
    }
  }
  if (kind.startsWith('header')) {
    const at = rng.int(layout.dataStart);
    const old = bytes[at];
    bytes[at] = kind === 'header-bit' ? old ^ (1 << rng.int(8)) : (old + 1 + rng.int(255)) & 0xff;
    write();
    return { text: `header byte ${at}: 0x${hex(old)} → 0x${hex(bytes[at])} ('${context(bytes, at)}')` };
  }
  const candidates = layout.tensors.filter(
    ([name, t]) => t.end > t.begin && (command === 'resume' || name.startsWith('ema/')),
  );
  const [tensor, { begin, end }] = rng.pick(candidates);
  const at = begin + rng.int(end - begin);
  if (kind === 'data-bit') {
    const bit = rng.int(8);
    bytes[at] ^= 1 << bit;
    write();
    return { text: `tensor ${tensor}: bit ${bit} of byte ${at} flipped`, tensor };
  }
  const n = Math.min(1 + rng.int(4), end - at);
  for (let k = 0; k < n; k++) bytes[at + k] = (bytes[at + k] + 1 + rng.int(255)) & 0xff;
  write();
  return { text: `tensor ${tensor}: ${n} bytes at ${at} overwritten`, tensor };
}

const hex = (b: number) => b.toString(16).padStart(2, '0');

/** The header text around a byte, for the reproduction line. */
function context(bytes: Uint8Array, at: number): string {
  const text = Buffer.from(bytes.subarray(Math.max(8, at - 12), at + 12)).toString('latin1');
  return text.replace(/[^\x20-\x7e]/g, '.').replace(/'/g, '"');
}

function writeNaN(path: string, tensor: string): void {
  const { tensors, metadata } = readSafetensors(path);
  const t = tensors.get(tensor)!;
  tensors.set(tensor, { ...t, data: new Float32Array(t.data.length).fill(Number.NaN) });
  writeSafetensors(path, tensors, metadata);
}

async function judge(
  ctx: Context,
  label: string,
  command: Command,
  dir: string,
  mutation: Mutation,
  clean: string,
  extra: string[] = [],
): Promise<Trial> {
  const result: CommandResult = await runNode(commandArgs(ctx, command, dir, extra), CLI_LIMITS);
  const checkpoint = join(dir, 'checkpoint.safetensors');
  const head = `${label} seed=${ctx.seed}: ${mutation.text}; \`${result.line}\``;
  const trial = (outcome: Trial['outcome'], what: string, tag: string): Trial => ({
    outcome,
    detail: `${head} → ${what}`,
    tag,
  });
  if (result.code !== 0) {
    const failure = failureOf(result, 'mdm-train');
    if (failure.kind !== 'one-line') return trial('unclear', `${failure.kind}: ${failure.line}`, 'crashed');
    if (!failure.line.includes(checkpoint)) return trial('unclear', `does not name the file: ${failure.line}`, 'vague');
    const short = mutation.tensor?.slice(mutation.tensor.indexOf('/') + 1);
    if (short && !failure.line.includes(short))
      return trial('unclear', `does not name the tensor: ${failure.line}`, 'vague');
    return trial('survived', `refused: ${failure.line}`, 'refused');
  }
  const same =
    command === 'sample'
      ? readFileSync(join(dir, 'probe.png')).equals(readFileSync(join(clean, 'probe.png')))
      : !compareRuns(dir, clean, STEPS);
  const output = same ? 'same output as the clean checkpoint' : 'output differs from the clean checkpoint';
  if (mutation.tensor || mutation.text.startsWith('truncated'))
    return trial('silent', `exit 0, changed data used without complaint (${output})`, 'accepted changed data');
  if (!same) return trial('silent', `exit 0, ${output}`, 'accepted changed header');
  return trial('survived', `exit 0, ${output}`, mutation.immaterial ? 'immaterial, same output' : 'same output');
}
