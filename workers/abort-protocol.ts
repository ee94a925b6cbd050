/**
 * The cooperative abort of service tasks: what the main thread's half
 * (abort-main.ts) and the worker threads' half (abort-worker.ts) share, and
 * the protocol they follow. Imported by both threads; holds no state.
 *
 * Each dispatched task holds a *slot*, an index into two Int32Arrays on
 * SharedArrayBuffers (`AbortShared`):
 *
 * - `abortFlags[slot]`: {@link NOT_ABORTED}, or the id of the task to abort.
 *   Task ids are never reused, so a flag left from the slot's previous task
 *   never matches the next one.
 * - `runningOn[slot]`: {@link QUEUED}, then the threadId that runs the task.
 *
 * The steps, in order (M = main thread, W = worker thread):
 *
 * 1. M claims a free slot, resets both cells, and sends `{ id, slot }` with the task.
 * 2. W, on starting the task, stores its threadId in `runningOn[slot]`, *then*
 *    reads `abortFlags[slot]`: if it holds the id, the task was aborted while
 *    queued and returns `aborted` at once, without running.
 * 3. M, to abort, stores the id in `abortFlags[slot]`, then posts the id on the
 *    BroadcastChannel `abortChannel`, which wakes W to abort the handler's
 *    `req.signal` (async handlers notice it; the flag alone would not wake them).
 * 4. W keeps the abort state of each running task, by id (its AbortController
 *    is made only if the handler reads `req.signal`). After loading the routes
 *    module (first task on a thread) it reads the flag again: a notice posted
 *    before the task was tracked found nothing to abort.
 * 5. M, `graceMs` after step 3, if the result has not come back, reads
 *    `runningOn[slot]`: QUEUED means step 2 has not happened (it will see the
 *    flag), otherwise M terminates that thread; piscina fails the task
 *    ("worker exited") and starts a replacement.
 * 6. M, when the task settles, cancels step 5 and frees the slot.
 *
 * Steps 2 and 3 each store, then load the other cell, with Atomics
 * (sequentially consistent), so at least one side sees the other: a task is
 * either never run, or its thread is known to M. piscina's own AbortSignal is
 * not used: it queues tasks that carry one in a separate list that it serves
 * newest-first when stricterFIFO is set (measured: 5 queued tasks ran
 * 5,4,3,2,1), so the oldest requests would starve.
 */

/** The shared memory and channel name the main thread hands each worker thread (in workerData). */
export interface AbortShared {
  /** One Int32 per slot: the id of the task to abort there, or NOT_ABORTED. */
  abortFlags: SharedArrayBuffer;
  /** One Int32 per slot: the threadId running its task, or QUEUED. */
  runningOn: SharedArrayBuffer;
  /** BroadcastChannel name on which the main thread announces aborted task ids. */
  abortChannel: string;
}

/** `abortFlags[slot]` of a task nobody aborted (task ids start at 1). */
export const NOT_ABORTED = 0;
/** `runningOn[slot]` of a task no thread has started (threadIds of workers start at 1). */
export const QUEUED = 0;
/** The reason `req.signal` is aborted with. */
export const ABORT_MESSAGE = 'request aborted';
