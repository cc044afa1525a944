// Drawing: one canvas per level of the nest, outermost first, each showing its level's state.
import type * as tf from '@tensorflow/tfjs-core';

export interface LevelView {
  canvas: HTMLCanvasElement;
  /** The level's row of snapshots taken while it denoises. */
  history: HTMLElement;
}

/**
 * One figure per level (`resolution` px, `frames` frames stacked), all shown 256 px wide, in
 * `container`; one row of snapshots per level in `history` (the paper's Fig. 11: levels × time).
 */
export function levelViews(
  container: HTMLElement,
  history: HTMLElement,
  levels: ReadonlyArray<{ resolution: number; frames: number }>,
): LevelView[] {
  container.replaceChildren();
  history.replaceChildren();
  return levels.map(({ resolution, frames }, i) => {
    const figure = document.createElement('figure');
    const canvas = document.createElement('canvas');
    canvas.width = resolution;
    canvas.height = resolution * frames;
    canvas.dataset.level = String(i);
    const caption = document.createElement('figcaption');
    caption.textContent = `level ${i}: ${resolution} px${frames > 1 ? ` × ${frames} frames` : ''}`;
    figure.append(canvas, caption);
    container.append(figure);
    const row = document.createElement('div');
    row.className = 'history-row';
    history.append(row);
    return { canvas, history: row };
  });
}

/** Appends each level's current picture to its row of snapshots, labelled with the step. */
export function snapshot(views: LevelView[], label: string): void {
  for (const { canvas, history } of views) {
    const copy = document.createElement('canvas');
    copy.width = canvas.width;
    copy.height = canvas.height;
    copy.title = label;
    copy.getContext('2d')?.drawImage(canvas, 0, 0);
    history.append(copy);
  }
}

/** Empties the rows of snapshots (a new sample starts). */
export function clearHistory(views: LevelView[]): void {
  for (const { history } of views) history.replaceChildren();
}

/**
 * Draws the first image of a level's state ([n, rows, r, c] in about [−1, 1]; values outside are
 * clipped, 1 or 2 channels shown as grey, a 4th as opacity) onto its canvas.
 */
export function drawLevel(canvas: HTMLCanvasElement, values: Float32Array, shape: readonly number[]): void {
  const [, rows, cols, channels] = shape;
  const context = canvas.getContext('2d');
  if (!context) return;
  const image = context.createImageData(cols, rows);
  const byte = (v: number) => Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
  for (let p = 0; p < rows * cols; p++) {
    const at = p * channels;
    const rgb = channels >= 3 ? [values[at], values[at + 1], values[at + 2]] : [values[at], values[at], values[at]];
    image.data[p * 4] = byte(rgb[0]);
    image.data[p * 4 + 1] = byte(rgb[1]);
    image.data[p * 4 + 2] = byte(rgb[2]);
    image.data[p * 4 + 3] = channels >= 4 ? byte(values[at + 3]) : 255;
  }
  context.putImageData(image, 0, 0);
}

/** Draws every level's state after a step: the first image of each, read asynchronously. */
export async function drawState(views: LevelView[], x: readonly tf.Tensor4D[]): Promise<void> {
  const data = await Promise.all(x.map((level) => level.data() as Promise<Float32Array>));
  data.forEach((values, i) => drawLevel(views[i].canvas, values, x[i].shape));
}
