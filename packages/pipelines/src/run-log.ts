import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SkipCounts } from '@matryoshka-ts/data';
import { lineChartSvg, smooth } from './plot.js';

/** One row of metrics.jsonl. */
export interface StepMetrics {
  step: number;
  phase: number;
  resolution: number;
  loss: number;
  mse: number[];
  lr: number;
  gradNorm: number;
  stepsPerSec: number;
  /** Why this step's update was skipped (a non-finite loss or gradient). */
  skipped?: string;
  /** Streamed sources: inputs skipped so far in the run (up to its data position), by reason; absent while none. */
  dataSkipped?: SkipCounts;
}

/** A run's metrics.jsonl and its loss curve (loss.svg). */
export class RunLog {
  readonly metricsPath: string;
  /** (step, loss) of every applied update, for the loss curve. */
  private readonly history: Array<[number, number]> = [];

  /**
   * Opens the log of the run in `out`. A fresh run starts an empty file; a resumed run keeps the
   * rows up to its checkpoint's `step` and drops later ones, which the resumed run replays.
   */
  constructor(
    private readonly out: string,
    resumeAt?: number,
  ) {
    this.metricsPath = join(out, 'metrics.jsonl');
    if (resumeAt === undefined) {
      writeFileSync(this.metricsPath, '');
      return;
    }
    if (!existsSync(this.metricsPath)) return;
    const kept = readFileSync(this.metricsPath, 'utf8')
      .split('\n')
      .filter((line) => line && (JSON.parse(line) as StepMetrics).step <= resumeAt);
    writeFileSync(this.metricsPath, kept.map((l) => `${l}\n`).join(''));
    for (const line of kept) {
      const m = JSON.parse(line) as StepMetrics;
      if (!m.skipped) this.history.push([m.step, m.loss]);
    }
  }

  append(metrics: StepMetrics): void {
    appendFileSync(this.metricsPath, `${JSON.stringify(metrics)}\n`);
    if (!metrics.skipped) this.history.push([metrics.step, metrics.loss]);
  }

  /** Redraws loss.svg: every loss, and a moving average over a fiftieth of them. */
  plot(): void {
    const window = Math.max(1, Math.floor(this.history.length / 50));
    const svg = lineChartSvg(
      [
        { name: 'loss', points: this.history, colour: '#9bb' },
        { name: `loss (mean of ${window})`, points: smooth(this.history, window), colour: '#c33' },
      ],
      { title: 'training loss', xLabel: 'step', yLabel: 'loss (log scale)' },
    );
    writeFileSync(join(this.out, 'loss.svg'), svg);
  }
}
