/**
 * The service's piscina pool of worker threads (worker-entry.ts): creating
 * the threads, loading the routes module in every one before the first
 * request, running tasks, and ending a thread on purpose. Replacing a thread
 * that died or was ended is piscina's job: a task whose thread exits fails
 * ("worker exited") and piscina starts a new thread (minThreads).
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import type { Logger } from 'pino';
import type { AbortShared } from './abort-protocol.js';
import type { BatchResult, DescribeResult, RunResult, RunTask, WorkerConfig, WorkerTask, WsResult, WsTask } from './task.js';
import { TaskBatcher } from './task-batcher.js';

export interface ThreadPoolOptions {
  /** file: URL of the compiled routes module each thread imports. */
  routesModule: string;
  /** Threads, started at once and kept (no idle timeout). */
  workers: number;
  /** The batches' time budget (TaskBatcher budgetMs; 0: no batches). */
  batchMs: number;
  /** Old-generation heap limit per thread in MiB; undefined keeps Node's. */
  maxHeapMb: number | undefined;
  /** The cooperative abort's shared memory (abort-main.ts `shared`). */
  abort: AbortShared;
  /** The BroadcastChannel of webSocketSend() (ws-routes.ts). */
  wsChannel: string;
  log: Logger;
  /** Keep each thread's event loop running between tasks (set by start() itself for WebSocket routes). */
  eventLoop?: boolean;
}

/** The routes as the module defines them, in definition order (a task's `route` indexes them). */
export type DescribedRoutes = DescribeResult['routes'];

type Pool = Piscina<WorkerTask, RunResult | DescribeResult | BatchResult | WsResult>;

export class ThreadPool {
  readonly #pool: Pool;
  readonly #batcher: TaskBatcher;
  #destroying = false;
  /** Threads that exited while the pool was up (each is replaced by piscina). */
  restarts = 0;

  private constructor(pool: Pool, threads: number, batchMs: number) {
    this.#pool = pool;
    this.#batcher = new TaskBatcher({
      threads,
      budgetMs: batchMs,
      runOne: (task) => pool.run(task) as Promise<RunResult>,
      runBatch: (tasks) => pool.run({ kind: 'batch', tasks }) as Promise<BatchResult>,
    });
    pool.on('workerDestroy', () => {
      if (!this.#destroying) this.restarts++;
    });
  }

  /** piscina's share of thread capacity spent running tasks since start (0..1). */
  get utilization(): number {
    return this.#pool.utilization;
  }

  /** Tasks waiting for a thread (in the batcher, or in piscina's queue). */
  get queueSize(): number {
    return this.#batcher.queued + this.#pool.queueSize;
  }

  /** How tasks went to the threads: alone, or in batches (task-batcher.ts). */
  get batchStats(): TaskBatcher['stats'] {
    return this.#batcher.stats;
  }

  get threads(): number {
    return this.#pool.threads.length;
  }

  /**
   * Starts the threads and has each load the routes module, then hands the
   * module's routes to `readRoutes` (the caller compiles them there).
   *
   * @throws Error "cannot load routes module …" (the original error as
   *   `cause`) when the module fails to load or is malformed, or `readRoutes`
   *   throws; the threads are gone then.
   */
  static async start<T>(options: ThreadPoolOptions, readRoutes: (routes: DescribedRoutes) => T): Promise<{ pool: ThreadPool; routes: T }> {
    const { workers, routesModule } = options;
    const workerData: WorkerConfig = { routesModule, abort: options.abort, wsChannel: options.wsChannel };
    // dist/ runs worker-entry.js; under tsx (tests, dev) worker-entry.ts, whose
    // loader the threads inherit from --import tsx.
    const ext = extname(fileURLToPath(import.meta.url));
    const pool: Pool = new Piscina<WorkerTask, RunResult | DescribeResult | BatchResult | WsResult>({
      filename: new URL(`./worker-entry${ext}`, import.meta.url).href,
      minThreads: workers,
      maxThreads: workers,
      // The limit users set is enforced on live tasks (service.ts #live): piscina's
      // queue also holds abandoned tasks until a thread reaches them, and counting
      // those answered 503 with fewer live requests than --max-queue (measured).
      // WebSocket events come on top (one at a time per connection, bounded per
      // connection in ws-routes.ts): a full piscina queue would fail HTTP batches too.
      maxQueue: Number.POSITIVE_INFINITY,
      // With the default (false) some tasks starved under sustained load here (DESIGN.md).
      stricterFIFO: true,
      idleTimeout: Number.POSITIVE_INFINITY,
      // piscina's default parks an idle thread in Atomics.wait: its timers and channel posts
      // stop between tasks. A WebSocket route with `background: true` sends at any time
      // (webSocketSend), so its service takes the 'async' mode, which piscina documents as slower.
      atomics: options.eventLoop === true ? 'async' : 'sync',
      ...(options.maxHeapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb } }),
      workerData,
    });
    // Some worker failures arrive here rather than as a rejected task.
    pool.on('error', (err: unknown) => options.log.error({ err }, 'worker pool error'));

    // One describe per thread, all at once (idle threads take one task each):
    // every thread loads the routes module before the first request, and when
    // loading fails every thread has finished booting before the pool is
    // destroyed. Terminating a thread while piscina still require()s its entry
    // file aborted the whole process (FATAL ERROR in loadESMFromCJS, exit 134;
    // measured about 1 in 40 failed starts with --workers 2 on Node 20).
    const described = await Promise.allSettled(Array.from({ length: workers }, () => pool.run({ kind: 'describe' })));
    try {
      const failed = described.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      const { routes } = (described[0] as PromiseFulfilledResult<DescribeResult>).value;
      // The module is known only once a thread has loaded it: start again in the other mode.
      if (options.eventLoop === true || !routes.some((r) => r.ws?.background === true)) return { pool: new ThreadPool(pool, workers, options.batchMs), routes: readRoutes(routes) };
    } catch (err) {
      await pool.destroy();
      // The error crossed from the worker thread without Node's source excerpt:
      // keep at least its kind ("SyntaxError: Unexpected token ';'").
      const { name, message } = err as Error;
      const why = name && name !== 'Error' ? `${name}: ${message}` : message;
      throw new M2gateError(ERROR_CODES.MODULE, `cannot load routes module ${routesModule}: ${why}`, { cause: err });
    }
    await pool.destroy();
    return ThreadPool.start({ ...options, eventLoop: true }, readRoutes);
  }

  /** Queues the task; rejects when its thread dies under it. */
  run(task: RunTask): Promise<RunResult> {
    return this.#batcher.run(task);
  }

  /** Queues one event of a WebSocket route (ws-routes.ts); rejects when its thread dies under it. */
  runWs(task: WsTask): Promise<WsResult> {
    return this.#pool.run(task) as Promise<WsResult>;
  }

  /**
   * Ends the thread with this threadId, if it is still in the pool; piscina
   * fails its task and starts a replacement. Returns false when there is none.
   */
  terminateThread(threadId: number): boolean {
    const worker = this.#pool.threads.find((w) => w.threadId === threadId);
    if (!worker) return false;
    void worker.terminate();
    return true;
  }

  /** Ends every thread; queued tasks are rejected. */
  destroy(): Promise<void> {
    this.#destroying = true;
    this.#batcher.failWaiting(new Error('the worker pool is closing'));
    return this.#pool.destroy();
  }
}
