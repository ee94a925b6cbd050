/**
 * Small adapters between m2gate's own counters and prom-client.
 *
 * Most of what m2gate counts already lives in plain `stats` objects that the
 * hot path increments (one `++`). Rather than a second, costlier increment
 * into prom-client on every request, these metrics read those numbers when
 * Prometheus scrapes (prom-client's `collect` hook), so metrics cost nothing
 * between scrapes.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export type Labelled = ReadonlyArray<readonly [labels: Record<string, string>, value: number]>;

/** A counter whose values are read at scrape time from monotonic numbers m2gate keeps anyway. */
export function counterFrom(registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => Labelled): Counter {
  return new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      // Scrapes are serialised per registry, so resetting and re-adding is exact.
      this.reset();
      for (const [labels, value] of read()) if (value > 0) this.inc(labels, value);
    },
  });
}

/** A gauge read at scrape time. */
export function gaugeFrom(registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => Labelled): Gauge {
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.set(labels, value);
    },
  });
}

/** `2xx` … `5xx`, the status label Prometheus users group by. */
export function statusClass(status: number): string {
  return status >= 500 ? '5xx' : status >= 400 ? '4xx' : status >= 300 ? '3xx' : status >= 200 ? '2xx' : '1xx';
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

/** The request method as a label, with every other method folded into `other` so label values stay bounded. */
export function methodLabel(method: string | undefined): string {
  return method !== undefined && METHODS.has(method) ? method : 'other';
}

/** Latency buckets in seconds: from a cached static file (~0.1 ms) to a slow service call. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
