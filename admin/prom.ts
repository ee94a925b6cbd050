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

/** One labelled series of a {@link BucketHistogram}: observing is an array walk and two additions. */
export interface HistogramSeries {
  observe(value: number): void;
}

/**
 * A Prometheus histogram whose observations cost a few nanoseconds: counts
 * live in plain arrays and prom-client reads them at scrape time through a
 * metric object's get() (which prom-client's registry serialises as it does
 * its own histograms). prom-client's own Histogram hashes the label set on
 * every observe (~440 ns each here, measured), too much for a per-request
 * hot path whose whole budget is a few microseconds.
 */
export class BucketHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, { labels: Record<string, string>; counts: Float64Array; sum: number; count: number }>();

  constructor(registry: Registry, name: string, help: string, bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.#bounds = bounds;
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The series for `labels`, made once; keep it and call observe() on it. */
  series(labels: Record<string, string>): HistogramSeries {
    const key = JSON.stringify(labels);
    let s = this.#series.get(key);
    if (!s) {
      s = { labels, counts: new Float64Array(this.#bounds.length), sum: 0, count: 0 };
      this.#series.set(key, s);
    }
    const bounds = this.#bounds;
    const series = s;
    return {
      observe(value: number): void {
        for (let i = 0; i < bounds.length; i++) {
          if (value <= bounds[i]!) {
            series.counts[i]!++;
            break;
          }
        }
        series.sum += value;
        series.count++;
      },
    };
  }

  /** prom-client's metric interface: cumulative `_bucket` series with `le`, then `_sum` and `_count`. */
  get(): { name: string; help: string; type: string; aggregator: string; values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> } {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (const s of this.#series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += s.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: this.#bounds[i]! }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.#series.clear();
  }
}
