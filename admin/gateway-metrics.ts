/**
 * The gateway's metrics (prefix `m2gate_`) and its last-minute windows for
 * the dashboard. One call per finished request (`requestDone`) feeds both;
 * everything else is read from the gateway's own counters at scrape time.
 *
 * Link services send their own registry's values over the link (METRICS);
 * /metrics appends them with a `service` label, so one scrape of the
 * gateway shows the whole pool.
 */
import { AggregatorRegistry, Registry, collectDefaultMetrics } from 'prom-client';
import { LatencyWindow, type WindowSnapshot } from './latency-window.js';
import { BucketHistogram, counterFrom, gaugeFrom, LATENCY_BUCKETS, type HistogramSeries, type Labelled } from './prom.js';
import type { HandlerStatus, RouteKind } from './status.js';

/** Why a request was refused before any target saw it. */
export type RefusedCause = 'hygiene' | 'header_count' | 'headers_timeout' | 'request_timeout' | 'draining' | 'not_found' | 'parse_error';

/** What one scrape reads of the gateway, taken once per /metrics (every pool's view read once). */
export interface GatewayScrape {
  inFlight: number;
  handlers: HandlerStatus[];
  bytes: { in: number; out: number };
  refused: Record<RefusedCause, number>;
  /** Handler requests the gateway answered itself, as `[{ handler, status, cause }, count]`. */
  failures: Labelled;
  /** Link Handlers: the summed wait of requests that left the queue for a service, and their number. */
  queueWait: Array<{ handler: string; seconds: number; count: number }>;
  /** The latest metrics each link service sent (prom-client's JSON form). */
  linkServices: Array<{ handler: string; service: string; metrics: unknown[] }>;
}

export interface GatewayMetricsSource {
  scrape(): GatewayScrape;
}

const KINDS: readonly RouteKind[] = ['app', 'handler', 'dir', 'proxy'];
/** Label values of m2gate_requests_total, as indexes into one flat array of counts. */
const COUNTED_KINDS = ['app', 'handler', 'dir', 'proxy', 'none'] as const;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'other'] as const;
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const KIND_INDEX = new Map<string, number>(COUNTED_KINDS.map((k, i) => [k, i]));
const METHOD_INDEX = new Map<string, number>(METHODS.map((m, i) => [m, i]));

export class GatewayMetrics {
  readonly registry = new Registry();
  /** requests by kind × method × status class, flat (see COUNTED_KINDS, METHODS, CLASSES). */
  readonly #requests = new Float64Array(COUNTED_KINDS.length * METHODS.length * CLASSES.length);
  readonly #duration: Record<RouteKind, HistogramSeries>;
  readonly #source: GatewayMetricsSource;
  /** The snapshot of the scrape under way: every collect of one /metrics reads the same one. */
  #scrape: GatewayScrape | undefined;
  /** When the windows begin: a Handler's window, made on its first request, counts from here too. */
  readonly #startedAt = Date.now();
  readonly all = new LatencyWindow(Date.now, this.#startedAt);
  readonly byKind: Record<RouteKind, LatencyWindow> = { app: new LatencyWindow(), handler: new LatencyWindow(), dir: new LatencyWindow(), proxy: new LatencyWindow() };
  readonly #byHandler = new Map<string, LatencyWindow>();

  constructor(source: GatewayMetricsSource) {
    const now = (): GatewayScrape => this.#scrape ?? source.scrape();
    this.#source = source;
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'm2gate_' });
    // Counted in plain arrays on the hot path (a prom-client inc or observe costs
    // ~400 ns each, measured) and handed to prom-client when it scrapes.
    counterFrom(r, 'm2gate_requests_total', 'Requests answered, by route kind (none: no route took it), method and status class.', ['kind', 'method', 'status'], () => {
      const out: Array<readonly [Record<string, string>, number]> = [];
      this.#requests.forEach((n, i) => {
        if (n === 0) return;
        const c = i % CLASSES.length;
        const m = Math.floor(i / CLASSES.length) % METHODS.length;
        const k = Math.floor(i / (CLASSES.length * METHODS.length));
        out.push([{ kind: COUNTED_KINDS[k]!, method: METHODS[m]!, status: CLASSES[c]! }, n]);
      });
      return out;
    });
    const duration = new BucketHistogram(r, 'm2gate_request_duration_seconds', 'Time from the request head to the end of the response, by route kind.', LATENCY_BUCKETS);
    this.#duration = { app: duration.series({ kind: 'app' }), handler: duration.series({ kind: 'handler' }), dir: duration.series({ kind: 'dir' }), proxy: duration.series({ kind: 'proxy' }) };
    counterFrom(r, 'm2gate_handler_failures_total', 'Handler requests the gateway answered itself, by Handler, status and cause.', ['handler', 'status', 'cause'], () => now().failures);
    counterFrom(r, 'm2gate_refused_total', 'Requests refused before any target saw them, by cause.', ['cause'], () =>
      Object.entries(now().refused).map(([cause, n]) => [{ cause }, n] as const));
    counterFrom(r, 'm2gate_handler_queue_wait_seconds_total', 'Link requests: total time waited in the gateway for credit (with _queued_total, the mean wait).', ['handler'], () =>
      now().queueWait.map((q) => [{ handler: q.handler }, q.seconds] as const));
    counterFrom(r, 'm2gate_handler_dequeued_total', 'Link requests that waited for credit and then went to a service.', ['handler'], () =>
      now().queueWait.map((q) => [{ handler: q.handler }, q.count] as const));
    gaugeFrom(r, 'm2gate_requests_in_flight', 'Requests received and not yet answered.', [], () => [[{}, now().inFlight]]);
    const perHandler = (read: (h: HandlerStatus) => number) => () => now().handlers.map((h) => [{ handler: h.name }, read(h)] as const);
    gaugeFrom(r, 'm2gate_handler_services', 'Services connected to the Handler.', ['handler'], perHandler((h) => h.connected));
    gaugeFrom(r, 'm2gate_handler_threads', 'Worker threads the connected link services announced.', ['handler'], perHandler((h) => h.threads));
    gaugeFrom(r, 'm2gate_handler_credit', 'Link credit of the connected services, held (requests out) or free.', ['handler', 'state'], () =>
      now().handlers.flatMap((h) => [[{ handler: h.name, state: 'held' }, h.creditHeld], [{ handler: h.name, state: 'free' }, h.creditFree]] as const));
    gaugeFrom(r, 'm2gate_handler_in_flight', 'Requests sent to the Handler and not yet answered.', ['handler'], perHandler((h) => h.inFlight));
    gaugeFrom(r, 'm2gate_handler_queue_depth', 'Link requests waiting in the gateway for credit.', ['handler'], perHandler((h) => h.queueDepth));
    counterFrom(r, 'm2gate_handler_retries_total', 'Link requests sent again to another service after theirs died.', ['handler'], perHandler((h) => h.retries));
    counterFrom(r, 'm2gate_bytes_total', 'Bytes read from and written to client connections (closed connections).', ['direction'], () => {
      const b = now().bytes;
      return [[{ direction: 'in' }, b.in], [{ direction: 'out' }, b.out]];
    });
  }

  /** One finished request. `handler` names the Handler for kind 'handler'; 'none' is a request no route took (404, refused). */
  requestDone(kind: RouteKind | 'none', method: string | undefined, status: number, seconds: number, handler?: string): void {
    const m = (method !== undefined ? METHOD_INDEX.get(method) : undefined) ?? METHODS.length - 1;
    const c = status >= 500 ? 4 : status >= 400 ? 3 : status >= 300 ? 2 : status >= 200 ? 1 : 0;
    this.#requests[(KIND_INDEX.get(kind)! * METHODS.length + m) * CLASSES.length + c]!++;
    const nowMs = Date.now();
    const ms = seconds * 1000;
    this.all.record(ms, status, nowMs);
    if (kind === 'none') return;
    this.#duration[kind].observe(seconds);
    this.byKind[kind].record(ms, status, nowMs);
    if (handler !== undefined) this.handlerWindow(handler).record(ms, status, nowMs);
  }

  handlerWindow(handler: string): LatencyWindow {
    let w = this.#byHandler.get(handler);
    if (!w) {
      w = new LatencyWindow(Date.now, this.#startedAt);
      this.#byHandler.set(handler, w);
    }
    return w;
  }

  kindSnapshots(): Record<RouteKind, WindowSnapshot> {
    const out = {} as Record<RouteKind, WindowSnapshot>;
    for (const k of KINDS) out[k] = this.byKind[k].snapshot();
    return out;
  }

  /** The gateway's own metrics, then every link service's with `handler` and `service` labels. */
  async metrics(): Promise<{ contentType: string; body: string }> {
    const scrape = this.#source.scrape();
    this.#scrape = scrape;
    let own: string;
    try {
      own = await this.registry.metrics();
    } finally {
      this.#scrape = undefined;
    }
    const services = scrape.linkServices;
    if (services.length === 0) return { contentType: this.registry.contentType, body: own };
    const labelled = services.map(({ handler, service, metrics }) => relabel(metrics, { handler, service }));
    const merged = AggregatorRegistry.aggregate(labelled);
    return { contentType: this.registry.contentType, body: `${own}\n${await merged.metrics()}` };
  }
}

interface MetricJson {
  name: string;
  values: Array<{ labels?: Record<string, string | number> }>;
}

function isMetricJson(m: unknown): m is MetricJson {
  return typeof m === 'object' && m !== null && typeof (m as MetricJson).name === 'string' && Array.isArray((m as MetricJson).values);
}

/**
 * Adds labels to every value. A service's numbers are its own report, so the
 * gateway only keeps metrics of the expected shape and service prefix: a
 * confused peer cannot overwrite the gateway's own series.
 */
function relabel(metrics: unknown[], extra: Record<string, string>): MetricJson[] {
  return metrics.filter(isMetricJson).filter((m) => m.name.startsWith('m2gate_service_')).map((m) => ({
    ...m,
    values: m.values.map((v) => ({ ...v, labels: { ...(v.labels ?? {}), ...extra } })),
  }));
}
