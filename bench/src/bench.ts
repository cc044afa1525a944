// `pnpm bench`: the default model's training step and sampling step in tfjs (each installed
// path) and in PyTorch CPU (bench/torch/mdm_reference.py, the same architecture and weights),
// alternating them in fresh processes on this machine, then the medians and the ratio
// tfjs / PyTorch of the fastest tfjs path. A benchmark, not a test. The last line is
//   ratio_train=<x> ratio_sample=<y>
//   pnpm bench [--preset emoji] [--batch 8] [--rounds 3] [--repeats 7] [--backends native,wasm]
// `pnpm bench --sweep [options]` times the same steps over batch sizes and model sizes instead (sweep.ts).
import { parseArgs } from 'node:util';
import { alternate, exportReference, summarise } from './compare.js';
import { NO_TORCH, findTorchPython, printMachine } from './machine.js';

const USAGE = `pnpm bench: the default model's training and sampling steps, tfjs against PyTorch on this machine
  pnpm bench [--preset emoji] [--batch 8] [--rounds 3] [--repeats 7] [--backends native,wasm,tensorflow]
  pnpm bench --sweep [--rounds 3] [--repeats 7] [--big-rounds 3] [--big-repeats 5] [--model-batch 1]
                     [--only <model>] [--backend native] [--out docs]
Prints the machine, per-round step times, the medians and a last line ratio_train=<x> ratio_sample=<y>.`;

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(USAGE);
} else {
  try {
    if (args.includes('--sweep')) await import('./sweep.js');
    else plainBench();
  } catch (error) {
    // parseArgs's own error is a stack trace; say which option and where the usage is.
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`bench: ${(error as Error).message} (pnpm bench --help)`);
      process.exit(2);
    }
    throw error;
  }
}

function plainBench() {
  const { values: opts } = parseArgs({
    options: {
      preset: { type: 'string', default: 'emoji' },
      batch: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '3' },
      repeats: { type: 'string', default: '7' },
      backends: { type: 'string', default: 'native,wasm,tensorflow' },
    },
  });
  printMachine();
  console.log(
    `model: preset ${opts.preset}, batch ${opts.batch}; ${opts.rounds} rounds × ${opts.repeats} timed steps ` +
      '(median), tfjs and PyTorch alternating',
  );
  const python = findTorchPython();
  if (!python) console.log(NO_TORCH);
  const { results } = alternate({
    model: opts.preset!,
    batch: Number(opts.batch),
    rounds: Number(opts.rounds),
    repeats: Number(opts.repeats),
    backends: opts.backends!.split(','),
    python,
    refDir: python ? exportReference(opts.preset!) : undefined,
  });

  console.log('\nmedians over rounds:');
  const summary = summarise(results);
  for (const [key, s] of summary) {
    const mem =
      key === 'pytorch'
        ? `peak RSS ${s.last.peak_rss_mib} MiB`
        : `peak RSS ${s.last.peak_rss_mib} MiB, tf.memory ${s.last.tf_memory_mib} MiB, ` +
          `tensors/step ${s.last.tensors_per_step}`;
    const what =
      key === 'pytorch'
        ? `torch ${s.last.torch}, ${s.last.threads} threads, ${String(s.last.blas).split(' (')[0]}`
        : String(s.last.description);
    console.log(
      `  ${key.padEnd(10)} train ${s.train.toFixed(3)} s  sample ${s.sample.toFixed(3)} s  (${what}; ${mem})`,
    );
    const impls = s.last.onednn_implementations as Record<string, number> | undefined;
    if (impls && Object.keys(impls).length > 0) {
      const list = Object.entries(impls).map(([what, n]) => `${what} (${n} ${n === 1 ? 'shape' : 'shapes'})`);
      console.log(`             oneDNN per direction: ${list.join('; ')}`);
    }
  }
  const tfjs = [...summary].filter(([k]) => k !== 'pytorch').sort((a, b) => a[1].train - b[1].train)[0];
  const torch = summary.get('pytorch');
  if (!tfjs) throw new Error('no tfjs backend ran');
  if (!torch) {
    console.log(`fastest tfjs path: ${tfjs[0]}; no PyTorch time to compare with`);
    console.log('ratio_train=unavailable ratio_sample=unavailable');
  } else {
    console.log(`fastest tfjs path: ${tfjs[0]} (tfjs time / PyTorch time)`);
    console.log(
      `ratio_train=${(tfjs[1].train / torch.train).toFixed(2)} ` +
        `ratio_sample=${(tfjs[1].sample / torch.sample).toFixed(2)}`,
    );
  }
}
