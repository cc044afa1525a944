import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SkipCounts } from '@matryoshka-ts/data';
import { lineChartSvg, smooth } from './plot.js';
import { appendRunFile, writeRunFile } from './run-files.js';

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
   * rows up to its checkpoint's `step` and drops later ones, which the resumed run replays. The
   * checkpoint is the truth: lines that are not JSON (a write torn by a full disk or a kill) are
   * dropped too, the file as it was set aside as `metrics.jsonl.torn`, and `note` says so.
   */
  constructor(
    private readonly out: string,
    resumeAt?: number,
    note: (line: string) => void = () => {},
  ) {
    this.metricsPath = join(out, 'metrics.jsonl');
    if (resumeAt === undefined) {
      writeRunFile(this.metricsPath, '');
      return;
    }
    if (!existsSync(this.metricsPath)) return;
    const text = readFileSync(this.metricsPath, 'utf8');
    const kept: StepMetrics[] = [];
    const torn: number[] = [];
    text.split('\n').forEach((line, i) => {
      if (!line) return;
      try {
        const m = JSON.parse(line) as StepMetrics;
        if (typeof m.step !== 'number') throw new Error('no step');
        if (m.step <= resumeAt) kept.push(m);
      } catch {
        torn.push(i + 1);
      }
    });
    if (torn.length) {
      const aside = `${this.metricsPath}.torn`;
      writeRunFile(aside, text);
      note(
        `metrics: ${this.metricsPath} had ${torn.length} unreadable line${torn.length === 1 ? '' : 's'} ` +
          `(line ${torn.slice(0, 5).join(', ')}${torn.length > 5 ? ', …' : ''}: a torn write); dropped, ` +
          `the file as it was kept as ${aside}; the checkpoint's step ${resumeAt} is where the run resumes`,
      );
    }
    writeRunFile(this.metricsPath, kept.map((m) => `${JSON.stringify(m)}\n`).join(''));
    for (const m of kept) if (!m.skipped) this.history.push([m.step, m.loss]);
  }

  append(metrics: StepMetrics): void {
    appendRunFile(this.metricsPath, `${JSON.stringify(metrics)}\n`);
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
    writeRunFile(join(this.out, 'loss.svg'), svg);
  }
}
