// The sampling loop: `generate` on the run, every level drawn after each step, a progress report.
import type { LevelSamples, WebRun } from '@matryoshka-ts/pipelines/browser';
import { type LevelView, clearHistory, drawLevel, drawState, snapshot } from './draw.js';

export interface SampleRequest {
  /** The caption (text runs) or class label (label runs); unconditional runs ignore both. */
  prompt: string;
  label: number;
  seed: number;
  steps: number;
  guidance: number;
}

/** Snapshots kept per level while it denoises (the last one after the final step). */
const SNAPSHOTS = 8;

/**
 * Lets the browser paint (canvases, progress bar) between two steps: resumes right after the next
 * frame, or after 100 ms where no frame comes (a hidden tab), so sampling never waits for a frame.
 */
const paint = () =>
  new Promise<void>((resolve) => {
    requestAnimationFrame(() => setTimeout(resolve, 0));
    setTimeout(resolve, 100);
  });

/**
 * Samples one image at every level with the run's sampler, threshold and η, drawing each level's
 * state after every step (and keeping a snapshot of it every total/8 steps) and the final (clamped)
 * images at the end. Returns `generate`'s result.
 */
export async function sampleRun(
  run: WebRun,
  request: SampleRequest,
  views: LevelView[],
  onProgress: (done: number, total: number) => void,
): Promise<LevelSamples[]> {
  const { sampler, eta, threshold } = run.manifest.sampling;
  clearHistory(views);
  // The first step compiles every shader (seconds on WebGL): let the click return and the page paint first.
  await paint();
  const samples = await run.generate({
    captions: [request.prompt],
    labels: [request.label],
    steps: request.steps,
    sampler,
    eta,
    guidance: request.guidance,
    threshold,
    seed: request.seed,
    onStep: async (index, total, x) => {
      await drawState(views, x);
      const done = index + 1;
      if (done < total && done % Math.ceil(total / SNAPSHOTS) === 0) snapshot(views, `step ${done}/${total}`);
      onProgress(done, total);
      await paint();
    },
  });
  samples.forEach((level, i) => {
    const rows = level.frames * level.resolution;
    drawLevel(views[i].canvas, level.images[0], [1, rows, level.resolution, level.channels]);
  });
  snapshot(views, `step ${request.steps}/${request.steps}`);
  return samples;
}
