import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DecodeOutcome, DecodeTask } from './decode-task.js';
import type { WorkerReply, WorkerRequest } from './decode-worker.js';

export interface DecodePoolOptions {
  /** Worker threads (default min(4, cores − 1), at least 1). */
  workers?: number;
  /** Results decoded ahead of the consumer, at most (default 32): bounds memory and keeps workers busy. */
  prefetch?: number;
}

/** The default number of decode workers: leave a core to the training loop, at most 4. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

/** Tasks a worker holds at once: two, so one's file read overlaps the other's decode. */
const TASKS_PER_WORKER = 2;

interface Slot {
  worker: Worker;
  busy: number;
  exited: boolean;
  /** Images this worker decoded, and its busy time as it last reported it. */
  images: number;
  busyMs: number;
}

interface Pending {
  task: DecodeTask;
  resolve: (outcome: DecodeOutcome) => void;
}

/**
 * Decodes samples in `worker_threads` (sharp and ffmpeg in the workers, so the training loop's
 * thread only copies pixels into batches). `decode` never rejects: a bad input resolves to a skip
 * with its reason. `decodeInOrder` keeps a bounded number of tasks in flight and yields results in
 * the order of its input, whatever order the workers finish in. `close` terminates the workers.
 */
export class DecodePool {
  readonly workers: number;
  readonly prefetch: number;
  private readonly slots: Slot[] = [];
  private readonly waiting: Pending[] = [];
  private readonly inFlight = new Map<number, { slot: Slot; resolve: (outcome: DecodeOutcome) => void }>();
  private nextId = 0;
  private closed = false;
  /** Why the pool stopped working (a worker crashed), if it did. */
  private broken: string | undefined;

  constructor(options: DecodePoolOptions = {}) {
    this.workers = options.workers ?? defaultWorkers();
    this.prefetch = options.prefetch ?? 32;
    if (!Number.isInteger(this.workers) || this.workers < 1)
      throw new Error(`decode pool: workers must be a positive integer, got ${this.workers}`);
    if (!Number.isInteger(this.prefetch) || this.prefetch < 1)
      throw new Error(`decode pool: prefetch must be a positive integer, got ${this.prefetch}`);
    for (let i = 0; i < this.workers; i++) this.slots.push(this.spawn());
  }

  /**
   * What the pool can deliver, in images per second: each worker's images over its own busy time,
   * summed. Idle time (the training step is slower than decoding) and the workers' start-up are not
   * counted, so this is the data side's capacity, not the rate the trainer happens to consume.
   * NaN until an image was decoded.
   */
  get imagesPerSecond(): number {
    const working = this.slots.filter((slot) => slot.images > 0 && slot.busyMs > 0);
    return working.length ? working.reduce((sum, slot) => sum + (slot.images * 1000) / slot.busyMs, 0) : Number.NaN;
  }

  /** Worker threads that have not exited (0 after `close`). */
  get liveWorkers(): number {
    return this.slots.filter((slot) => !slot.exited).length;
  }

  /** Decodes one task in a worker; resolves to the pixels or to a skip. */
  decode(task: DecodeTask): Promise<DecodeOutcome> {
    if (this.closed || this.broken) {
      const reason = this.broken ? 'decoder crashed' : 'decoder closed';
      return Promise.resolve({ ok: false, reason, message: this.broken ?? 'the decode pool was closed', fatal: true });
    }
    return new Promise<DecodeOutcome>((resolve) => {
      this.waiting.push({ task, resolve });
      this.dispatch();
    });
  }

  /**
   * Decodes the items `next` returns (until it returns undefined), with at most `prefetch` of them
   * read ahead of the consumer, and yields each item with its outcome in the items' order.
   */
  async *decodeInOrder<T>(
    next: () => Promise<T | undefined>,
    task: (item: T) => DecodeTask,
  ): AsyncGenerator<{ item: T; outcome: DecodeOutcome }> {
    const ahead: Array<Promise<{ item: T; outcome: DecodeOutcome }>> = [];
    let exhausted = false;
    for (;;) {
      while (!exhausted && ahead.length < this.prefetch) {
        const item = await next();
        if (item === undefined) exhausted = true;
        else ahead.push(this.decode(task(item)).then((outcome) => ({ item, outcome })));
      }
      const head = ahead.shift();
      if (!head) return;
      yield await head;
    }
  }

  /** Terminates the workers; tasks still outstanding resolve as fatal 'decoder closed'. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const gone: DecodeOutcome = {
      ok: false,
      reason: 'decoder closed',
      message: 'the decode pool was closed',
      fatal: true,
    };
    for (const pending of this.waiting.splice(0)) pending.resolve(gone);
    for (const { resolve } of this.inFlight.values()) resolve(gone);
    this.inFlight.clear();
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  /** Hands waiting tasks to the least busy workers. */
  private dispatch(): void {
    while (this.waiting.length > 0) {
      const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
      if (slot.busy >= TASKS_PER_WORKER) return;
      const { task, resolve } = this.waiting.shift()!;
      const id = this.nextId++;
      this.inFlight.set(id, { slot, resolve });
      if (slot.busy++ === 0) slot.worker.ref(); // a worker with work keeps the process alive
      slot.worker.postMessage({ id, task } satisfies WorkerRequest);
    }
  }

  private spawn(): Slot {
    const worker = startWorker();
    const slot: Slot = { worker, busy: 0, exited: false, images: 0, busyMs: 0 };
    // An idle worker must not keep the process alive (a run that ends without close() still exits).
    worker.unref();
    worker.on('message', (reply: WorkerReply) => {
      const entry = this.inFlight.get(reply.id);
      if (!entry) return;
      this.inFlight.delete(reply.id);
      if (--slot.busy === 0) worker.unref();
      const { id: _id, busyMs, ...outcome } = reply;
      slot.busyMs = busyMs;
      if (outcome.ok) slot.images += outcome.frames;
      entry.resolve(outcome);
      this.dispatch();
    });
    // A crash in the worker is a bug or a broken installation, not a bad sample: every task
    // outstanding or to come fails as fatal and the caller stops with the message. (Restarting
    // the worker could loop forever when it cannot even start.)
    const fail = (message: string) => {
      if (this.closed) return;
      this.broken ??= message;
      const crashed: DecodeOutcome = { ok: false, reason: 'decoder crashed', message: this.broken, fatal: true };
      for (const entry of this.inFlight.values()) entry.resolve(crashed);
      this.inFlight.clear();
      for (const pending of this.waiting.splice(0)) pending.resolve(crashed);
    };
    worker.on('error', (error) => fail(`decode worker failed: ${error.message}`));
    worker.on('exit', (code) => {
      slot.exited = true;
      fail(`decode worker exited with code ${code}`);
    });
    return slot;
  }
}

/**
 * Starts a decode worker. From the built package the worker is the compiled `decode-worker.js`
 * beside this module's bundle (tsup builds it as a second entry). From TypeScript sources (tests,
 * `pnpm mdm-train` through tsx) only `decode-worker.ts` exists: Node cannot load it by itself, and
 * workers do not inherit the parent's `--import tsx`, so a two-line bootstrap registers tsx's
 * loader inside the worker, then imports the TypeScript worker.
 */
function startWorker(): Worker {
  const built = new URL('./decode-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return new Worker(built);
  const source = new URL('./decode-worker.ts', import.meta.url);
  let tsx: string;
  try {
    tsx = import.meta.resolve('tsx/esm/api');
  } catch {
    throw new Error(
      `decode pool: running from TypeScript sources (${fileURLToPath(source)}) ` +
        `needs the tsx package to start decode workers; ` +
        `install it or use the built package`,
    );
  }
  const bootstrap =
    `import(${JSON.stringify(tsx)}).then((api) => { api.register(); ` +
    `return import(${JSON.stringify(source.href)}); });`;
  return new Worker(bootstrap, { eval: true });
}
