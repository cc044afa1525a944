// The reliability probe (`pnpm test:reliability [--quick] [--seed N] [--only kill,disk,corrupt,fuzz]
// [--backend native]`): runs each family of trials, prints one count line per family and in total,
// one line per silent or unclear trial (enough to reproduce it), and exits 1 if there is any.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corruptFamily } from './corrupt.js';
import { diskFamily, unmountAll } from './disk.js';
import { fuzzFamily } from './fuzz.js';
import { killFamily } from './kill.js';
import {
  CLI_LIMITS,
  type Context,
  type FamilyResult,
  type Reference,
  Rng,
  countLine,
  firstLine,
  runNode,
  STEPS,
  seconds,
  trainArgs,
} from './shared.js';

const FAMILIES = { kill: killFamily, disk: diskFamily, corrupt: corruptFamily, fuzz: fuzzFamily };
type FamilyName = keyof typeof FAMILIES;

function parseArgs(argv: string[]) {
  const options = { quick: false, seed: 1, only: Object.keys(FAMILIES) as FamilyName[], backend: 'native' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--seed') {
      options.seed = Number(value());
      if (!Number.isInteger(options.seed)) usage('--seed must be an integer');
    } else if (arg === '--only') {
      options.only = value().split(',') as FamilyName[];
      const bad = options.only.filter((f) => !(f in FAMILIES));
      if (bad.length) usage(`unknown family ${bad.join(', ')}`);
    } else if (arg === '--backend') options.backend = value();
    else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  return options;
}

function usage(error?: string): never {
  if (error) console.error(`test:reliability: ${error}`);
  console.error(
    'usage: pnpm test:reliability [--quick] [--seed N] [--only kill,disk,corrupt,fuzz] [--backend native|cpu|wasm]',
  );
  process.exit(error ? 2 : 0);
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const root = mkdtempSync(join(tmpdir(), 'mdm-reliability-'));
  const started = performance.now();
  const log = (line: string) => console.error(`[${seconds(performance.now() - started).padStart(7)}] ${line}`);
  let reference: Promise<Reference> | undefined;
  const ctx: Context = {
    ...options,
    root,
    log,
    rng: (label) => new Rng(options.seed, label),
    reference: () => {
      reference ??= trainReference(root, options.seed, options.backend, log);
      return reference;
    },
  };
  log(`reliability probe: seed ${options.seed}, ${options.quick ? 'quick' : 'full'}, families ${options.only}`);
  const results: FamilyResult[] = [];
  const cleanUp = () => {
    unmountAll();
    rmSync(root, { recursive: true, force: true });
  };
  // Ctrl-C still unmounts the disk family's tmpfs and removes the temp folder.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cleanUp();
      process.exit(130);
    });
  }
  try {
    for (const name of options.only) {
      log(`family ${name}: starting`);
      const familyStarted = performance.now();
      try {
        results.push(await FAMILIES[name](ctx));
      } catch (error) {
        // A bug in the probe itself, or a reference run that failed: one unclear trial, named.
        const detail = `${name}: the family could not run: ${(error as Error).stack ?? error}`.split('\n')[0];
        results.push({ name, trials: [{ outcome: 'unclear', detail }], notes: [] });
      }
      log(`family ${name}: done in ${seconds(performance.now() - familyStarted)}`);
    }
  } finally {
    cleanUp();
  }
  for (const family of results) {
    console.log(`${family.name.padEnd(8)} ${countLine(family.trials)}`);
    if (family.skipped) console.log(`  skipped: ${family.skipped}`);
    for (const note of family.notes) console.log(`  ${note}`);
    for (const t of family.trials) if (t.outcome !== 'survived') console.log(`  ${t.outcome.padEnd(8)} ${t.detail}`);
  }
  const all = results.flatMap((f) => f.trials);
  console.log(`${'total'.padEnd(8)} ${countLine(all)} (${seconds(performance.now() - started)}, seed ${options.seed})`);
  const failed = all.some((t) => t.outcome !== 'survived');
  if (failed) {
    const mode = options.quick ? ' --quick' : '';
    console.log(`rerun one family: pnpm test:reliability${mode} --seed ${options.seed} --only <family>`);
  }
  return failed ? 1 : 0;
}

/** The uninterrupted run every kill and disk trial is compared with; its checkpoint is what corrupt mutates. */
async function trainReference(root: string, seed: number, backend: string, log: (l: string) => void) {
  const dir = join(root, 'reference');
  log(`reference run: micro, seed ${seed}, ${backend} backend…`);
  const result = await runNode(trainArgs(dir, seed, backend), CLI_LIMITS);
  if (result.code !== 0) throw new Error(`the reference run failed: ${firstLine(result, 'mdm-train')}`);
  log(`reference run: ${seconds(result.ms)}`);
  return { dir, ms: result.ms, steps: STEPS };
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
