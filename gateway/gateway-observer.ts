/**
 * What the admin listener shows of a gateway: its metrics and last-minute
 * windows (admin/gateway-metrics.ts), /status.json (admin/status.ts), the
 * refusals and bytes the gateway counts, and the start command's restarts.
 * The gateway counts at its decision points; everything here is assembled
 * when a scrape or the dashboard asks, so nothing of it runs per request.
 */
import type { Duplex } from 'node:stream';
import { GatewayMetrics, type GatewayScrape, type RefusedCause } from '../admin/gateway-metrics.js';
import { STATUS_VERSION, type GatewayStatus, type HandlerStatus, type RestartRecord } from '../admin/status.js';
import type { AdminSource, Readiness } from '../admin/admin-server.js';
import { LinkPool, type HandlerDispatch, type PoolView } from './handler/index.js';

/** A Handler of the gateway with the route patterns that reach it. */
export interface ObservedHandler {
  dispatch: HandlerDispatch;
  routes: string[];
}

export interface ObserverOptions {
  /** Keep metrics and windows (GatewayOptions.metrics). */
  metrics: boolean;
  /** The gateway's Handlers (the array is filled as the route table is built). */
  handlers: readonly ObservedHandler[];
  inFlight(): number;
  requests(): number;
  readiness(): Readiness;
}

/** The start command's supervised services, newest first: at most this many kept. */
const RESTARTS_KEPT = 20;
const EMPTY = { rps: 0, count: 0, errors: 0, p50Ms: 0, p99Ms: 0 };

export class GatewayObserver {
  readonly metrics: GatewayMetrics | undefined;
  /** Refused before any target saw them, by cause: the gateway increments these. */
  readonly refused: Record<RefusedCause, number> = { hygiene: 0, header_count: 0, headers_timeout: 0, request_timeout: 0, draining: 0, not_found: 0, parse_error: 0 };
  /** Bytes of closed client connections (counted with metrics on). */
  readonly bytes = { in: 0, out: 0 };
  readonly #opts: ObserverOptions;
  readonly #startedAt = new Date();
  #restarts: RestartRecord[] = [];

  constructor(options: ObserverOptions) {
    this.#opts = options;
    this.metrics = options.metrics ? this.#makeMetrics() : undefined;
  }

  /** Per connection, not per request: what crossed the socket, once it is closed. */
  countBytes(socket: Duplex & { bytesRead?: number; bytesWritten?: number }): void {
    socket.once('close', () => {
      this.bytes.in += socket.bytesRead ?? 0;
      this.bytes.out += socket.bytesWritten ?? 0;
    });
  }

  recordRestart(record: RestartRecord): void {
    this.#restarts = [record, ...this.#restarts].slice(0, RESTARTS_KEPT);
  }

  handlerStatus(): HandlerStatus[] {
    return this.#opts.handlers.map(({ dispatch, routes }) => this.#status(dispatch, routes, dispatch.pool.view()));
  }

  #status(dispatch: HandlerDispatch, routes: string[], v: PoolView): HandlerStatus {
    const { pool, failures } = dispatch;
    const name = pool.config.sendSpec;
    return {
      name,
      transport: pool.config.transport,
      routes,
      up: pool.hasPeers,
      connected: v.connected,
      services: v.services,
      threads: v.threads,
      creditHeld: v.creditHeld,
      creditFree: v.creditFree,
      inFlight: pool.pending,
      queueDepth: v.queueDepth,
      window: this.metrics ? this.metrics.handlerWindow(name).snapshot() : EMPTY,
      errors: { '502': failures.badReply + v.serviceLost, '503': failures.noService + v.queueRejected, '504': failures.timeout },
      retries: v.retries,
    };
  }

  /** /status.json; the windows are zeros without metrics. */
  status(): GatewayStatus {
    const readiness = this.#opts.readiness();
    const metrics = this.metrics;
    return {
      version: STATUS_VERSION,
      role: 'gateway',
      pid: process.pid,
      startedAt: this.#startedAt.toISOString(),
      now: new Date().toISOString(),
      ready: readiness.ready,
      notReady: readiness.reasons,
      inFlight: this.#opts.inFlight(),
      requests: this.#opts.requests(),
      window: metrics ? metrics.all.snapshot() : EMPTY,
      byKind: metrics ? metrics.kindSnapshots() : { app: EMPTY, handler: EMPTY, dir: EMPTY, proxy: EMPTY },
      handlers: this.handlerStatus(),
      restarts: this.#restarts,
    };
  }

  /** @throws Error when the gateway keeps no metrics (GatewayOptions.metrics). */
  adminSource(): AdminSource {
    const metrics = this.metrics;
    if (!metrics) throw new Error('the admin listener needs a gateway made with { metrics: true }');
    return { metrics: () => metrics.metrics(), status: () => this.status(), readiness: () => this.#opts.readiness() };
  }

  #makeMetrics(): GatewayMetrics {
    return new GatewayMetrics({ scrape: () => this.#scrape() });
  }

  /** One /metrics worth of numbers, each pool's view read once. */
  #scrape(): GatewayScrape {
    const handlers: HandlerStatus[] = [];
    const failures: Array<readonly [Record<string, string>, number]> = [];
    const queueWait: GatewayScrape['queueWait'] = [];
    const linkServices: GatewayScrape['linkServices'] = [];
    for (const { dispatch, routes } of this.#opts.handlers) {
      const { pool } = dispatch;
      const v = pool.view();
      const handler = pool.config.sendSpec;
      const f = dispatch.failures;
      handlers.push(this.#status(dispatch, routes, v));
      failures.push(
        [{ handler, status: '503', cause: 'no_service' }, f.noService],
        [{ handler, status: '503', cause: 'no_credit' }, v.queueRejected],
        [{ handler, status: '413', cause: 'too_large' }, f.tooLarge],
        [{ handler, status: '504', cause: 'timeout' }, f.timeout],
        [{ handler, status: '502', cause: 'bad_reply' }, f.badReply],
        [{ handler, status: '502', cause: 'service_lost' }, v.serviceLost],
      );
      if (pool instanceof LinkPool) queueWait.push({ handler, ...pool.queueWait });
      for (const r of v.reports) linkServices.push({ handler, service: r.service, metrics: r.metrics });
    }
    return { inFlight: this.#opts.inFlight(), handlers, bytes: this.bytes, refused: this.refused, failures, queueWait, linkServices };
  }
}
