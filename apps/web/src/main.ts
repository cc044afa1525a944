// The page: picks a backend, loads the exported run named by `?run=` (default `run/` beside the
// page), and samples on demand. Its state is on `window.mdm` for scripts and the browser test.
import { BACKENDS, type PageBackend, chooseBackend } from './backend.js';
import { levelViews } from './draw.js';
import { loadRun } from './load-run.js';
import { sampleRun } from './sampling.js';

/** What a script can read: the phase, the backend, and the last samples as plain arrays per level. */
export interface PageState {
  status: 'loading' | 'ready' | 'sampling' | 'done' | 'error';
  backend?: PageBackend;
  skipped?: string[];
  /** WebGL's renderer, when it runs. */
  renderer?: string;
  error?: string;
  /** Sampling time of the last sample, seconds. */
  seconds?: number;
  /** The last sample: per level (outermost first) its shape [frames·r, r, c] and values in [−1, 1]. */
  samples?: Array<{ resolution: number; frames: number; channels: number; values: number[] }>;
}

declare global {
  interface Window {
    mdm: PageState;
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const state: PageState = { status: 'loading' };
window.mdm = state;

function report(text: string, error = false): void {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

async function start(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const asked = params.get('backend') as PageBackend | null;
  if (asked && !BACKENDS.includes(asked)) throw new Error(`?backend=${asked}: choose ${BACKENDS.join(', ')}`);
  const backend = await chooseBackend(asked ? [asked] : BACKENDS);
  Object.assign(state, { backend: backend.name, skipped: backend.skipped, renderer: backend.renderer });
  $('backend').textContent = backend.renderer ? `${backend.name} (${backend.renderer})` : backend.name;
  $('backend').title = backend.skipped.join('\n');
  report('loading the run…');
  const run = await loadRun(params.get('run') ?? 'run/');
  const { manifest } = run;
  $('run-info').textContent =
    `step ${manifest.step}, ${manifest.levels.map((l) => `${l.resolution} px`).join(' ⊃ ')}, ` +
    `${manifest.sampling.sampler} sampler`;
  const text = manifest.conditioning.kind === 'text';
  $<HTMLInputElement>('prompt').disabled = !text;
  $<HTMLInputElement>('prompt').value = manifest.prompts[0] ?? '';
  $('prompts').replaceChildren(
    ...manifest.prompts.map((p) => Object.assign(document.createElement('option'), { value: p })),
  );
  $('label-field').hidden = manifest.conditioning.kind !== 'labels';
  // Label numClasses is the null label: unconditional samples.
  if (manifest.conditioning.kind === 'labels')
    $<HTMLInputElement>('label').max = String(manifest.conditioning.numClasses);
  $<HTMLInputElement>('steps').value = String(manifest.sampling.steps);
  $<HTMLInputElement>('guidance').value = String(manifest.sampling.guidance);
  const views = levelViews($('levels'), $('history'), manifest.levels);
  const button = $<HTMLButtonElement>('sample');
  button.disabled = false;
  state.status = 'ready';
  report('ready');
  $('controls').addEventListener('submit', async (event) => {
    event.preventDefault();
    const number = (id: string) => Number($<HTMLInputElement>(id).value);
    button.disabled = true;
    state.status = 'sampling';
    const progress = $<HTMLProgressElement>('progress');
    const started = performance.now();
    try {
      const samples = await sampleRun(
        run,
        {
          prompt: $<HTMLInputElement>('prompt').value,
          label: number('label'),
          seed: number('seed'),
          steps: number('steps'),
          guidance: number('guidance'),
        },
        views,
        (done, total) => {
          progress.max = total;
          progress.value = done;
          report(`sampling: step ${done}/${total}`);
        },
      );
      state.seconds = (performance.now() - started) / 1000;
      state.samples = samples.map(({ resolution, frames, channels, images }) => ({
        resolution,
        frames,
        channels,
        values: Array.from(images[0]),
      }));
      state.status = 'done';
      report(`done in ${state.seconds.toFixed(1)} s on ${backend.name}`);
    } catch (error) {
      fail(error);
    } finally {
      button.disabled = false;
    }
  });
}

function fail(error: unknown): void {
  state.status = 'error';
  state.error = (error as Error).message ?? String(error);
  report(state.error, true);
}

start().catch(fail);
