// Times one training step and one sampling step of a training preset's full model on each
// backend that is installed (each in a fresh process running tfjs-steps.ts, the same steps
// `pnpm bench` compares with PyTorch), and prints steps/s and tf.memory(). A benchmark, not a test:
//   pnpm bench:steps [preset=emoji] [batch=8] [repeats=3]
import { runJson, tsx } from './child.js';

/** What tfjs-steps.ts prints. */
interface StepResult {
  preset: string;
  params: number;
  batch: number;
  train_step_s: number;
  sample_step_s: number;
  tensors_per_step: number;
  tf_memory_mib: number;
  peak_rss_mib: number;
}

const [presetName = 'emoji', batch = '8', repeats = '3'] = process.argv.slice(2);

for (const backend of ['cpu', 'wasm', 'native', 'tensorflow']) {
  const r = runJson(process.execPath, [...tsx, 'bench/src/tfjs-steps.ts', backend, presetName, batch, repeats]) as
    | StepResult
    | { error: string };
  if ('error' in r) {
    console.log(`${backend}: not available (${r.error})`);
    continue;
  }
  console.log(
    `${backend}: ${r.preset} (${r.params.toLocaleString('en')} params), batch ${r.batch}: ` +
      `train step ${r.train_step_s.toFixed(2)} s (${(1 / r.train_step_s).toFixed(2)} steps/s), ` +
      `sampling step ${r.sample_step_s.toFixed(2)} s (${(1 / r.sample_step_s).toFixed(2)} steps/s); ` +
      `tensors/step ${r.tensors_per_step >= 0 ? '+' : ''}${r.tensors_per_step}, ` +
      `tf.memory ${r.tf_memory_mib} MiB, peak RSS ${r.peak_rss_mib} MiB`,
  );
}
