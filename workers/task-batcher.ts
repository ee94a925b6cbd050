/**
 * The thread hop, batched. Each piscina task costs a message each way and a
 * wake-up of the worker thread (about 40 µs on the worker alone, measured
 * with an empty route), which for a trivial route is most of the work. So
 * requests that must wait for a thread anyway go to it together:
 *
 * - while a thread is free, a task goes at once and alone (a request that
 *   arrives alone never waits for company);
 * - when every thread is busy, tasks wait here, and when a thread comes free
 *   the oldest go to it as one batch, in order, as many as fit a small time
 *   budget by their route's measured run time (`budgetMs`, at most `maxBatch`).
 *   So batches grow with the queue for cheap routes and never form for slow
 *   ones: a batch runs its tasks one after the other on one thread, as piscina
 *   runs tasks, and its results come back together, so a slow task in a batch
 *   would hold back the others' replies. A route not measured yet goes alone.
 *
 * A batch is one piscina task: if its thread dies, every task of the batch
 * fails (each request gets its 500 once). A task that fails on its own (its
 * route threw; the worker catches that) fails alone.
 */
import type { BatchResult, RunResult, RunTask } from './task.js';

export interface BatcherOptions {
  /** Threads of the pool: this many submissions may be outstanding at once. */
  threads: number;
  runOne(task: RunTask): Promise<RunResult>;
  /** Runs `tasks` in order on one thread; one entry per task in the result. */
  runBatch(tasks: RunTask[]): Promise<BatchResult>;
  /** Expected run time a batch may add up to. Default 1 ms; 0 makes every task go alone. */
  budgetMs?: number;
  /** Tasks in one batch at most. Default 64. */
  maxBatch?: number;
}

interface Waiting {
  task: RunTask;
  resolve(result: RunResult): void;
  reject(err: unknown): void;
}

export class TaskBatcher {
  readonly #opts: Required<BatcherOptions>;
  /** Submissions to piscina not settled yet (single tasks and batches alike). */
  #outstanding = 0;
  #waiting: Waiting[] = [];
  #head = 0;
  /** Per route index: its recent run time in ms (a moving average). */
  readonly #cost: number[] = [];
  readonly stats = { single: 0, batches: 0, batchedTasks: 0 };

  constructor(options: BatcherOptions) {
    this.#opts = { budgetMs: 1, maxBatch: 64, ...options };
  }

  /** Tasks waiting here for a thread. */
  get queued(): number {
    return this.#waiting.length - this.#head;
  }

  run(task: RunTask): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ task, resolve, reject });
      this.#pump();
    });
  }

  /** Rejects every task still waiting (the pool is going away). */
  failWaiting(err: Error): void {
    const left = this.#waiting.slice(this.#head);
    this.#waiting = [];
    this.#head = 0;
    for (const w of left) w.reject(err);
  }

  #pump(): void {
    while (this.#outstanding < this.#opts.threads && this.queued > 0) {
      const batch = this.#take();
      this.#outstanding++;
      if (batch.length === 1) this.#submitOne(batch[0]!);
      else this.#submitBatch(batch);
    }
  }

  /** The oldest waiting task, and those after it that fit the budget with it. */
  #take(): Waiting[] {
    const first = this.#waiting[this.#head++]!;
    const batch = [first];
    let cost = this.#costOf(first.task.route);
    const { budgetMs, maxBatch } = this.#opts;
    while (budgetMs > 0 && cost <= budgetMs && batch.length < maxBatch && this.queued > 0) {
      const next = this.#waiting[this.#head]!;
      const more = this.#costOf(next.task.route);
      if (cost + more > budgetMs) break;
      cost += more;
      batch.push(next);
      this.#head++;
    }
    if (this.#head === this.#waiting.length) {
      this.#waiting = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
    return batch;
  }

  #costOf(route: number): number {
    return this.#cost[route] ?? Number.POSITIVE_INFINITY;
  }

  #measure(route: number, result: RunResult): void {
    const ms = Math.max(0, result.finishedAt - result.startedAt);
    const was = this.#cost[route];
    // A moving average that follows the last few runs: a route that turns slow leaves the
    // batches after a run or two, and one slow run of a cheap route (a preempted thread, a
    // first call) is forgotten as quickly.
    this.#cost[route] = was === undefined ? ms : (was + ms) / 2;
  }

  #settled(): void {
    this.#outstanding--;
    this.#pump();
  }

  #submitOne(w: Waiting): void {
    this.stats.single++;
    this.#opts.runOne(w.task).then(
      (result) => {
        this.#measure(w.task.route, result);
        this.#settled();
        w.resolve(result);
      },
      (err: unknown) => {
        this.#settled();
        w.reject(err);
      },
    );
  }

  #submitBatch(batch: Waiting[]): void {
    this.stats.batches++;
    this.stats.batchedTasks += batch.length;
    this.#opts.runBatch(batch.map((w) => w.task)).then(
      ({ results }) => {
        this.#settled();
        batch.forEach((w, i) => {
          const r = results[i];
          if (r === undefined) w.reject(new Error('the batch came back without this task'));
          else if ('failed' in r) w.reject(new Error(r.failed));
          else {
            this.#measure(w.task.route, r);
            w.resolve(r);
          }
        });
      },
      (err: unknown) => {
        this.#settled();
        for (const w of batch) w.reject(err);
      },
    );
  }
}
