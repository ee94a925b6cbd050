/**
 * Request rate, error count and latency quantiles over the last minute, for
 * the dashboard and /status.json.
 *
 * Prometheus histograms answer "since start"; an operator looking at the
 * dashboard wants "now". One slot per second in a ring of 60, each slot a
 * fixed log-scale histogram, so a record is an index computation and two
 * increments (no allocation, no sort), and a snapshot merges at most 60
 * slots. Quantiles are the upper bound of the bucket they fall in: with a
 * ratio of 1.25 between bounds, within 25 % of the true value.
 */

const SLOTS = 60;
/** Bucket i holds latencies up to MIN_MS * RATIO^i. */
const MIN_MS = 0.05;
const RATIO = 1.25;
const BUCKETS = 64; // 0.05 ms … ~84 s; the last bucket takes everything above.
const LOG_RATIO = Math.log(RATIO);

export interface WindowSnapshot {
  /** Requests per second over the seconds the window covers (at most 60, at least 1). */
  rps: number;
  /** Requests in the window. */
  count: number;
  /** Of them, answered with a 5xx status. */
  errors: number;
  /** Latency quantiles in ms (bucket upper bounds); 0 with no requests. */
  p50Ms: number;
  p99Ms: number;
}

function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const i = Math.ceil(Math.log(ms / MIN_MS) / LOG_RATIO);
  return i < BUCKETS ? i : BUCKETS - 1;
}

function boundOf(bucket: number): number {
  return MIN_MS * RATIO ** bucket;
}

export class LatencyWindow {
  /** SLOTS rows of BUCKETS counters, one flat array. */
  readonly #hist = new Uint32Array(SLOTS * BUCKETS);
  readonly #count = new Uint32Array(SLOTS);
  readonly #errors = new Uint32Array(SLOTS);
  /** The second (of `clock`) each slot holds; -1 when never used. */
  readonly #second = new Float64Array(SLOTS).fill(-1);
  readonly #clock: () => number;
  readonly #startedAt: number;

  /**
   * `clock` returns ms (Date.now by default); tests pass their own.
   * `startedAtMs` (default: now) is where the window's seconds begin: windows
   * made later over the same traffic pass their owner's start, so that they
   * divide by the same seconds.
   */
  constructor(clock: () => number = Date.now, startedAtMs = clock()) {
    this.#clock = clock;
    this.#startedAt = startedAtMs;
  }

  /** Counts one finished request; `nowMs` saves a clock read when the caller has one. */
  record(ms: number, status: number, nowMs = this.#clock()): void {
    const second = Math.floor(nowMs / 1000);
    const slot = second % SLOTS;
    if (this.#second[slot] !== second) {
      this.#second[slot] = second;
      this.#count[slot] = 0;
      this.#errors[slot] = 0;
      this.#hist.fill(0, slot * BUCKETS, slot * BUCKETS + BUCKETS);
    }
    this.#count[slot]!++;
    if (status >= 500) this.#errors[slot]!++;
    this.#hist[slot * BUCKETS + bucketOf(ms)]!++;
  }

  snapshot(): WindowSnapshot {
    const nowMs = this.#clock();
    const second = Math.floor(nowMs / 1000);
    const merged = new Float64Array(BUCKETS);
    let count = 0;
    let errors = 0;
    for (let slot = 0; slot < SLOTS; slot++) {
      const s = this.#second[slot]!;
      // The current second is partial: it counts, and the oldest one drops out.
      if (s < 0 || s <= second - SLOTS || s > second) continue;
      count += this.#count[slot]!;
      errors += this.#errors[slot]!;
      for (let b = 0; b < BUCKETS; b++) merged[b]! += this.#hist[slot * BUCKETS + b]!;
    }
    const coveredS = Math.min(SLOTS, Math.max(1, (nowMs - this.#startedAt) / 1000));
    return { rps: count / coveredS, count, errors, p50Ms: quantile(merged, count, 0.5), p99Ms: quantile(merged, count, 0.99) };
  }
}

function quantile(hist: Float64Array, count: number, q: number): number {
  if (count === 0) return 0;
  const rank = Math.ceil(q * count);
  let seen = 0;
  for (let b = 0; b < BUCKETS; b++) {
    seen += hist[b]!;
    if (seen >= rank) return boundOf(b);
  }
  return boundOf(BUCKETS - 1);
}
