/**
 * A service process's metrics (prefix `m2gate_service_`). Served on the
 * service's own `--admin` listener and, over the m2gate link, sent to the
 * gateway, whose /metrics shows every link service with a `service` label.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import { BucketHistogram, counterFrom, gaugeFrom, LATENCY_BUCKETS, type HistogramSeries } from './prom.js';

export interface ServiceCounters {
  received: number;
  replied: number;
  aborted: number;
  timedOut: number;
  rejected503: number;
  errors500: number;
  malformed: number;
  lateResults: number;
}

/** What the service knows that the metrics read at scrape time. */
export interface ServiceMetricsSource {
  readonly stats: ServiceCounters;
  /** Requests accepted and not yet answered (queued or running). */
  liveTasks(): number;
  /** Tasks waiting in piscina's queue for a thread. */
  queuedTasks(): number;
  threads(): number;
  /** piscina's utilization: the share of the pool's capacity spent running tasks since start (0..1). */
  utilization(): number;
  /** Worker threads that exited unexpectedly and were replaced. */
  workerRestarts(): number;
  /** How tasks went to the threads (workers/task-batcher.ts). */
  threadHops(): { single: number; batches: number; batchedTasks: number };
}

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly #duration: BucketHistogram;
  /** One series per route pattern, made once. */
  readonly #byRoute = new Map<string, HistogramSeries>();

  constructor(source: ServiceMetricsSource) {
    const r = this.registry;
    const s = source.stats;
    collectDefaultMetrics({ register: r, prefix: 'm2gate_service_' });
    counterFrom(r, 'm2gate_service_tasks_received_total', 'Requests received from the fronts.', [], () => [[{}, s.received]]);
    counterFrom(r, 'm2gate_service_tasks_replied_total', 'Replies sent.', [], () => [[{}, s.replied]]);
    counterFrom(r, 'm2gate_service_tasks_aborted_total', 'Tasks aborted because their client went away.', [], () => [[{}, s.aborted]]);
    counterFrom(r, 'm2gate_service_tasks_timed_out_total', 'Tasks past their route or service timeout (answered 504).', [], () => [[{}, s.timedOut]]);
    counterFrom(r, 'm2gate_service_tasks_rejected_total', 'Requests refused with 503 because the queue was full.', [], () => [[{}, s.rejected503]]);
    counterFrom(r, 'm2gate_service_tasks_failed_total', 'Tasks answered 500 (route threw, thread died).', [], () => [[{}, s.errors500]]);
    counterFrom(r, 'm2gate_service_messages_malformed_total', 'Messages from a front that were not valid Mongrel2 requests.', [], () => [[{}, s.malformed]]);
    counterFrom(r, 'm2gate_service_late_results_total', 'Results that came back after their request was answered or abandoned.', [], () => [[{}, s.lateResults]]);
    counterFrom(r, 'm2gate_service_worker_restarts_total', 'Worker threads that died and were replaced.', [], () => [[{}, source.workerRestarts()]]);
    counterFrom(r, 'm2gate_service_thread_hops_total', 'Messages to the worker threads: a task alone, or a batch of tasks that waited for a busy thread.', ['kind'], () => {
      const h = source.threadHops();
      return [[{ kind: 'single' }, h.single], [{ kind: 'batch' }, h.batches]];
    });
    counterFrom(r, 'm2gate_service_batched_tasks_total', 'Tasks that went to a thread in a batch.', [], () => [[{}, source.threadHops().batchedTasks]]);
    gaugeFrom(r, 'm2gate_service_tasks_live', 'Requests accepted and not yet answered.', [], () => [[{}, source.liveTasks()]]);
    gaugeFrom(r, 'm2gate_service_queue_depth', 'Tasks waiting for a worker thread.', [], () => [[{}, source.queuedTasks()]]);
    gaugeFrom(r, 'm2gate_service_threads', 'Worker threads in the pool.', [], () => [[{}, source.threads()]]);
    gaugeFrom(r, 'm2gate_service_thread_utilization', "Share of the pool's thread time spent running tasks since start (piscina's utilization).", [], () => [[{}, source.utilization()]]);
    this.#duration = new BucketHistogram(r, 'm2gate_service_task_duration_seconds', 'Time from receiving a request to its reply being ready, by route pattern.', LATENCY_BUCKETS);
  }

  /** One answered task; `route` is its pattern (`GET /svc/user/:id`), never the raw path, so label values stay bounded. */
  taskDone(route: string, seconds: number): void {
    let child = this.#byRoute.get(route);
    if (!child) {
      child = this.#duration.series({ route });
      this.#byRoute.set(route, child);
    }
    child.observe(seconds);
  }

  async metrics(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
