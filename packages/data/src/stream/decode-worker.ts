// The body of a decode worker thread: decodes the tasks the pool posts and posts back the pixels,
// transferring their buffer rather than copying it. Built as its own entry (dist/decode-worker.js).
import { parentPort } from 'node:worker_threads';
import { type DecodeOutcome, type DecodeTask, runDecodeTask } from './decode-task.js';

/** A task as the pool posts it, with the id its answer carries back. */
export interface WorkerRequest {
  id: number;
  task: DecodeTask;
}

/** An outcome with its task's id and the worker's busy time so far (for the pool's throughput). */
export type WorkerReply = DecodeOutcome & { id: number; busyMs: number };

const port = parentPort;
if (!port) throw new Error('decode-worker: must run in a worker thread (it is started by DecodePool)');

// Time with at least one task in progress, on this thread's clock: the pool's throughput must not
// count time a task's answer waited for the main thread, busy with a training step.
let active = 0;
let busySince = 0;
let busyMs = 0;

port.on('message', (request: WorkerRequest) => {
  if (active++ === 0) busySince = performance.now();
  void runDecodeTask(request.task).then((outcome) => {
    if (--active === 0) busyMs += performance.now() - busySince;
    const busy = busyMs + (active > 0 ? performance.now() - busySince : 0);
    if (!outcome.ok) return port.postMessage({ id: request.id, busyMs: busy, ...outcome } satisfies WorkerReply);
    const pixels = ownBuffer(outcome.pixels);
    port.postMessage({ id: request.id, busyMs: busy, ok: true, pixels, frames: outcome.frames } satisfies WorkerReply, [
      pixels.buffer as ArrayBuffer,
    ]);
  });
});

/**
 * The pixels as an array that owns its whole buffer, so the buffer can be transferred. Decoders
 * may return a view into a larger or shared allocation (Node's pooled small Buffers); transferring
 * that would detach memory others use, so only then is a copy made.
 */
function ownBuffer(pixels: Uint8Array): Uint8Array {
  const whole =
    pixels.byteOffset === 0 && pixels.byteLength === pixels.buffer.byteLength && pixels.buffer instanceof ArrayBuffer;
  return whole ? pixels : pixels.slice();
}
