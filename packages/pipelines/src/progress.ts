/** Formats seconds as 1h02m, 3m07s or 12s. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/**
 * A one-line progress display on stderr: redrawn in place on a terminal, printed every
 * `everySeconds` otherwise (CI logs, pipes).
 */
export class ProgressLine {
  private last = 0;
  private readonly tty: boolean;

  constructor(
    private readonly everySeconds = 10,
    /** Print nothing (the ranks of a data-parallel run other than rank 0). */
    private readonly silent = false,
  ) {
    this.tty = Boolean(process.stderr.isTTY);
  }

  update(text: string, force = false): void {
    if (this.silent) return;
    const now = Date.now() / 1000;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${text}`);
    } else if (force || now - this.last >= this.everySeconds) {
      process.stderr.write(`${text}\n`);
      this.last = now;
    }
  }

  /** Ends the line (on a terminal) and prints `text` on its own line. */
  log(text: string): void {
    if (this.silent) return;
    process.stderr.write(`${this.tty ? '\r\x1b[2K' : ''}${text}\n`);
  }

  done(): void {
    if (this.tty && !this.silent) process.stderr.write('\n');
  }
}

/** Speed over the last few steps (steps per second), for the progress line and the ETA. */
export class Throughput {
  private times: number[] = [];

  tick(): void {
    this.times.push(performance.now());
    if (this.times.length > 21) this.times.shift();
  }

  perSecond(): number {
    if (this.times.length < 2) return Number.NaN;
    return ((this.times.length - 1) * 1000) / (this.times[this.times.length - 1] - this.times[0]);
  }
}
