/**
 * Deadlines for many in-flight requests on one timer. Requests with the same
 * timeout expire in the order they started, so each timeout gets a FIFO lane
 * (a Set keeps insertion order and deletes in O(1)) and the one timer is armed
 * for the earliest head. Adding costs a clock read and a Set insert; the timer
 * is re-armed only when a lane with a shorter timeout gets an earlier head, and
 * under steady traffic it fires about once per timeout, not once per request
 * (a setTimeout per request allocates a Timeout and re-links a timer list each time).
 */

export interface Deadline {
  readonly at: number;
  readonly lane: Set<Deadline>;
  readonly onExpire: () => void;
}

export class DeadlineSweep {
  readonly #lanes = new Map<number, Set<Deadline>>();
  #timer: NodeJS.Timeout | undefined;
  #armedAt = Infinity;

  /** Calls `onExpire` once `timeoutMs` have passed, unless {@link delete} comes first. */
  add(timeoutMs: number, onExpire: () => void): Deadline {
    let lane = this.#lanes.get(timeoutMs);
    if (!lane) {
      lane = new Set();
      this.#lanes.set(timeoutMs, lane);
    }
    const deadline: Deadline = { at: performance.now() + timeoutMs, lane, onExpire };
    lane.add(deadline);
    if (deadline.at < this.#armedAt) this.#arm(deadline.at);
    return deadline;
  }

  delete(deadline: Deadline): void {
    // The timer stays armed: when it fires for a head that is gone it re-arms for the next one.
    deadline.lane.delete(deadline);
  }

  get size(): number {
    let n = 0;
    for (const lane of this.#lanes.values()) n += lane.size;
    return n;
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#armedAt = at;
    this.#timer = setTimeout(() => this.#sweep(), Math.max(0, Math.ceil(at - performance.now())));
    // In-flight requests keep the process alive on their own; a pending deadline must not.
    this.#timer.unref();
  }

  #sweep(): void {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const now = performance.now();
    const expired: Deadline[] = [];
    let next = Infinity;
    for (const [timeoutMs, lane] of this.#lanes) {
      for (const d of lane) {
        if (d.at > now) {
          next = Math.min(next, d.at);
          break;
        }
        lane.delete(d);
        expired.push(d);
      }
      if (lane.size === 0) this.#lanes.delete(timeoutMs);
    }
    if (next < Infinity) this.#arm(next);
    for (const d of expired) d.onExpire();
  }
}
