/**
 * Heartbeats and liveness of the m2gate link (protocol/m2gate-link.md, HEARTBEAT), one rule
 * for both ends: the gateway keeps one per service (gateway/handler/link-pool.ts), a service
 * one for its gateway (workers/link-front.ts). Each end calls check() once a heartbeat
 * interval; the peer is dead after `liveness` silent intervals, and a HEARTBEAT is due when
 * nothing was sent for an interval (any message counts both ways, so a busy link sends none).
 *
 * Socket- and timer-free: the caller owns the interval timer and passes the clock, so the
 * rule is tested without sockets or waiting (test/link-liveness.test.ts).
 */

export interface LivenessOptions {
  /** Heartbeat interval in ms. Defaults to 1,000. */
  heartbeatMs?: number;
  /**
   * Silent intervals before the peer is dead. Defaults to 3. At least 2 in practice: each
   * end checks once an interval, so heartbeats may arrive up to two intervals apart (measured).
   */
  liveness?: number;
}

export const LIVENESS_DEFAULTS = { heartbeatMs: 1000, liveness: 3 } as const;

/** What check() found: the peer is dead, a HEARTBEAT is due, or nothing is to be done. */
export const Verdict = { DEAD: 'dead', BEAT: 'beat', QUIET: 'quiet' } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** One end's view of one peer: when it last heard from it and last sent to it (ms, Date.now()). */
export class Liveness {
  readonly heartbeatMs: number;
  readonly #deadAfterMs: number;
  #lastHeard: number;
  #lastSent: number;

  /** `now` stands for both "heard" and "sent": a new peer gets a full deadline. */
  constructor(options: LivenessOptions = {}, now = Date.now()) {
    this.heartbeatMs = options.heartbeatMs ?? LIVENESS_DEFAULTS.heartbeatMs;
    this.#deadAfterMs = this.heartbeatMs * (options.liveness ?? LIVENESS_DEFAULTS.liveness);
    this.#lastHeard = now;
    this.#lastSent = now;
  }

  /** When the peer was last heard from (ms, Date.now()). */
  get lastHeard(): number {
    return this.#lastHeard;
  }

  /** A message (any command) came from the peer. */
  heard(now = Date.now()): void {
    this.#lastHeard = now;
  }

  /** A message (any command) went to the peer. */
  sent(now = Date.now()): void {
    this.#lastSent = now;
  }

  /** Dead once silent longer than `heartbeatMs × liveness`; else a HEARTBEAT is due after `heartbeatMs` without sending. */
  check(now = Date.now()): Verdict {
    if (now - this.#lastHeard > this.#deadAfterMs) return Verdict.DEAD;
    if (now - this.#lastSent >= this.heartbeatMs) return Verdict.BEAT;
    return Verdict.QUIET;
  }
}
