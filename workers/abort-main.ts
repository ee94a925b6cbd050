/**
 * The main thread's half of the cooperative abort (the protocol and its steps
 * are in abort-protocol.ts; the worker's half is abort-worker.ts): slot
 * allocation, the abort flag and notice, and terminating a thread whose
 * handler ignores its signal past the grace period.
 */
import { randomUUID } from 'node:crypto';
import { BroadcastChannel } from 'node:worker_threads';
import { NOT_ABORTED, QUEUED, type AbortShared } from './abort-protocol.js';

/** The fields of a task the abort bookkeeping owns. */
export interface AbortableTask {
  /** Never reused, never 0 (NOT_ABORTED). */
  readonly id: number;
  /** The task's slot while it holds one, -1 otherwise. */
  slot: number;
  /** Step 5's timer, while an aborted task has not come back. */
  hardAbort?: NodeJS.Timeout | undefined;
}

/**
 * Called at step 5 for a running task that ignored its signal: end `threadId`.
 * The slot is still the task's when this runs: release() cancels the timer when
 * the result arrives, and piscina gives the thread no other task before that
 * result is processed.
 */
export type OnIgnoredAbort<T> = (task: T, threadId: number) => void;

export class TaskAborts<T extends AbortableTask> {
  /** For workerData: every worker thread opens the same memory and channel. */
  readonly shared: AbortShared;
  readonly #flags: Int32Array;
  readonly #runningOn: Int32Array;
  readonly #freeSlots: number[];
  readonly #channel: BroadcastChannel;
  readonly #graceMs: number;
  readonly #onIgnored: OnIgnoredAbort<T>;

  /**
   * @param slots How many tasks may hold a slot at once (the pool's whole queue).
   * @param graceMs How long an aborted handler may run before its thread is ended.
   */
  constructor(slots: number, graceMs: number, onIgnored: OnIgnoredAbort<T>) {
    const abortFlags = new SharedArrayBuffer(slots * Int32Array.BYTES_PER_ELEMENT);
    const runningOn = new SharedArrayBuffer(slots * Int32Array.BYTES_PER_ELEMENT);
    // Unique per service, so two services in one process never abort each other's tasks.
    const abortChannel = `m2gate-abort-${process.pid}-${randomUUID()}`;
    this.shared = { abortFlags, runningOn, abortChannel };
    this.#flags = new Int32Array(abortFlags);
    this.#runningOn = new Int32Array(runningOn);
    // Popped from the end: slot 0 first.
    this.#freeSlots = Array.from({ length: slots }, (_, i) => slots - 1 - i);
    this.#channel = new BroadcastChannel(abortChannel);
    this.#channel.unref();
    this.#graceMs = graceMs;
    this.#onIgnored = onIgnored;
  }

  get hasFreeSlot(): boolean {
    return this.#freeSlots.length > 0;
  }

  /** Step 1: gives the task a slot with both cells reset. Check hasFreeSlot first. */
  claim(task: T): void {
    const slot = this.#freeSlots.pop()!;
    task.slot = slot;
    Atomics.store(this.#flags, slot, NOT_ABORTED);
    Atomics.store(this.#runningOn, slot, QUEUED);
  }

  /** Step 3, and step 5 after the grace period. Does nothing for a task without a slot (never dispatched, or settled). */
  abort(task: T): void {
    if (task.slot < 0) return;
    Atomics.store(this.#flags, task.slot, task.id);
    this.#channel.postMessage(task.id);
    task.hardAbort = setTimeout(() => this.#expire(task), this.#graceMs);
  }

  /** Step 6: the task settled (result or failure). */
  release(task: T): void {
    clearTimeout(task.hardAbort);
    if (task.slot >= 0) {
      this.#freeSlots.push(task.slot);
      task.slot = -1;
    }
  }

  #expire(task: T): void {
    if (task.slot < 0) return;
    const thread = Atomics.load(this.#runningOn, task.slot);
    if (thread === QUEUED) return; // it returns at once when it starts
    this.#onIgnored(task, thread);
  }

  /** Closes the channel: no more aborts are announced. */
  close(): void {
    this.#channel.close();
  }
}
