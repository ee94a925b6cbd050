/**
 * The worker thread's half of the cooperative abort (the protocol and its
 * steps are in abort-protocol.ts; the main thread's half is abort-main.ts).
 * Every line of this file runs in a worker thread.
 */
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { ABORT_MESSAGE, type AbortShared } from './abort-protocol.js';

export class AbortListener {
  readonly #flags: Int32Array;
  readonly #runningOn: Int32Array;
  /** The running tasks' controllers, by task id. */
  readonly #running = new Map<number, AbortController>();

  constructor(shared: AbortShared) {
    this.#flags = new Int32Array(shared.abortFlags);
    this.#runningOn = new Int32Array(shared.runningOn);
    const channel = new BroadcastChannel(shared.abortChannel);
    // The channel must not keep the thread alive: piscina decides when it ends.
    channel.unref();
    channel.onmessage = (event: unknown) => {
      const id = (event as { data: number }).data;
      this.#running.get(id)?.abort(new Error(ABORT_MESSAGE));
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
   * Step 4: the signal for the task's handler, already aborted when the
   * flag was set while this thread loaded the routes module. Pair with
   * {@link untrack} when the handler settles.
   */
  track(slot: number, id: number): AbortSignal {
    const controller = new AbortController();
    this.#running.set(id, controller);
    if (Atomics.load(this.#flags, slot) === id) controller.abort(new Error(ABORT_MESSAGE));
    return controller.signal;
  }

  /** The handler settled: a later notice for the task finds nothing. */
  untrack(id: number): void {
    this.#running.delete(id);
  }
}
