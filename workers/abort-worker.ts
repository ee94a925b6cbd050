/**
 * The worker thread's half of the cooperative abort (the protocol and its
 * steps are in abort-protocol.ts; the main thread's half is abort-main.ts).
 * Every line of this file runs in a worker thread.
 */
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { ABORT_MESSAGE, type AbortShared } from './abort-protocol.js';

/**
 * A running task's abort state. Its AbortController is made only when the handler reads
 * `req.signal`: Node builds an AbortSignal on V8's slow path (a prototype swap, then keyed
 * stores and loads whose caches never hold), 2.7 µs with one read of `aborted` in a
 * micro-benchmark and 21 k of the worker thread's 100 k instructions per /svc/hello task
 * (callgrind), while most routes never look at it.
 */
export class RunningTask {
  #aborted = false;
  #controller: AbortController | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  /** Already aborted when the abort came before the handler first asked. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(new Error(ABORT_MESSAGE));
    }
    return this.#controller.signal;
  }

  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#controller?.abort(new Error(ABORT_MESSAGE));
  }
}

export class AbortListener {
  readonly #flags: Int32Array;
  readonly #runningOn: Int32Array;
  /** The running tasks, by task id. */
  readonly #running = new Map<number, RunningTask>();

  constructor(shared: AbortShared) {
    this.#flags = new Int32Array(shared.abortFlags);
    this.#runningOn = new Int32Array(shared.runningOn);
    const channel = new BroadcastChannel(shared.abortChannel);
    // The channel must not keep the thread alive: piscina decides when it ends.
    channel.unref();
    channel.onmessage = (event: unknown) => {
      const id = (event as { data: number }).data;
      this.#running.get(id)?.abort();
    };
  }

  /**
   * Step 2: publishes that this thread runs the task, then reads its flag.
   * Returns true when the task was aborted while queued: do not run it.
   */
  start(slot: number, id: number): boolean {
    // Published before the abort check, so an abort can never miss a started task.
    Atomics.store(this.#runningOn, slot, threadId);
    return Atomics.load(this.#flags, slot) === id;
  }

  /**
   * Step 4: the task's abort state for its handler, already aborted when the
   * flag was set while this thread loaded the routes module. Pair with
   * {@link untrack} when the handler settles.
   */
  track(slot: number, id: number): RunningTask {
    const task = new RunningTask();
    this.#running.set(id, task);
    if (Atomics.load(this.#flags, slot) === id) task.abort();
    return task;
  }

  /** The handler settled: a later notice for the task finds nothing. */
  untrack(id: number): void {
    this.#running.delete(id);
  }
}
