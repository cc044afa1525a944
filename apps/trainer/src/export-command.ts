import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '@matryoshka-ts/backends';
import { writeSafetensors } from '@matryoshka-ts/checkpoint';
import { ConfigError } from '@matryoshka-ts/core';
import {
  WEB_RUN_FILE,
  type WebRunManifest,
  modelConfigOf,
  openRun,
  parseTrainConfig,
  phaseLevel,
  previewConditions,
  readCheckpointInfo,
  readRunManifest,
  runCheckpointPath,
  webExportProblem,
  writeRunFileAtomic,
} from '@matryoshka-ts/pipelines';

export interface ExportCommandOptions {
  /** The run: a run directory or one checkpoint / snapshot file, as `mdm-train sample --run`. */
  run: string;
  /** The folder to write the web run into (created if missing; the export's files are replaced). */
  web: string;
  /** Export the EMA weights (default) or the raw ones. */
  ema: boolean;
  /** Export weights holding NaN or Inf anyway (warned) instead of refusing them. */
  allowNonfinite?: boolean;
}

/** Captions offered as the page's first prompts (the bundled data's, in the order sample grids use). */
const PROMPTS = 8;

/**
 * `mdm-train export --web <dir>`: the files a web page samples a run from (apps/web): config.json
 * (the resolved config), weights.safetensors (the weights `mdm-train sample` would use: the
 * checkpoint's phase model, EMA by default) and web-run.json (the manifest: levels, the hashed-word
 * encoder's settings, the sampling defaults, a few prompts), written last. Returns the files.
 */
export async function exportWebCommand(options: ExportCommandOptions): Promise<string[]> {
  const { run: path, web: dir } = options;
  if (existsSync(path) && statSync(path).isDirectory()) {
    const manifest = readRunManifest(path);
    if (manifest)
      throw new ConfigError(
        `${path}: cannot export a ${manifest.kind} run for the web: it samples through ` +
          `${manifest.stages.length} models; a web page samples one (an mdm or simple run)`,
      );
  }
  // The header first (a missing or corrupt checkpoint, a run the page cannot sample fail here).
  const file = runCheckpointPath(path);
  const info = readCheckpointInfo(file);
  const config = parseTrainConfig(info.config);
  const problem = webExportProblem(config);
  if (problem) throw new ConfigError(`${file}: cannot export for the web: ${problem}`);
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new ConfigError(`--web ${dir}: is a file; give a folder to write the web run into`);
  // The weights as `mdm-train sample` opens them (the checkpoint's phase, EMA, NaN/Inf refused),
  // read on the pure-JS backend: nothing is computed.
  await initBackend({ backend: 'cpu', quiet: true });
  const run = await openRun(path, { ema: options.ema, allowNonFinite: options.allowNonfinite });
  try {
    const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
    for (const [name, v] of run.model.params)
      tensors.set(name, { dtype: 'F32', shape: v.shape, data: (await v.data()) as Float32Array });
    const phase = run.progress.phase;
    const from = phaseLevel(modelConfigOf(config), config.phases[phase], phase);
    const k = run.conditioner;
    const manifest: WebRunManifest = {
      format: 'matryoshka-ts/web-run',
      version: 1,
      config: 'config.json',
      weights: 'weights.safetensors',
      step: run.progress.step,
      phase,
      from,
      ema: options.ema,
      levels: run.levels.map(({ resolution, channels, frames }) => ({ resolution, channels, frames })),
      conditioning:
        k.kind === 'text'
          ? { kind: 'text', encoder: { kind: 'hashed-words', width: k.encoder.width, maxTokens: k.encoder.maxTokens } }
          : k.kind === 'labels'
            ? { kind: 'labels', numClasses: k.numClasses }
            : { kind: 'none' },
      sampling: {
        steps: config.sampling.steps,
        sampler: config.sampling.sampler,
        eta: config.sampling.eta,
        guidance: config.sampling.guidance,
        threshold: config.sampling.threshold,
      },
      prompts: config.data.source === 'bundled' ? previewConditions(run.dataset(), PROMPTS).captions : [],
    };
    mkdirSync(dir, { recursive: true });
    const written = [join(dir, manifest.config), join(dir, manifest.weights), join(dir, WEB_RUN_FILE)];
    writeRunFileAtomic(written[0], `${JSON.stringify(config, null, 2)}\n`);
    writeSafetensors(written[1], tensors, { format: 'matryoshka-ts/web-run', step: String(manifest.step) });
    // The manifest last: a folder whose export was cut short has none, and the page says so.
    writeRunFileAtomic(written[2], `${JSON.stringify(manifest, null, 2)}\n`);
    return written;
  } finally {
    run.dispose();
  }
}
