/**
 * The link's scheduling policy, without sockets: which service gets a request (credit, the
 * expected-finish pick), what waits (the bounded FIFO queue and its timeout), and what happens
 * to a dead service's requests (retry elsewhere or give up). link-pool.ts owns the ROUTER and
 * does what this decides, through `dispatch` and `fail`; undici splits its pools the same
 * way (pool-base vs the picking policy). Tested alone in test/link-scheduling.test.ts.
 */
import { performance } from 'node:perf_hooks';

/** Methods that may be sent twice (RFC 9110 §9.2.2), as the link spec lists them. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);
/** The first send and one retry: a request that killed two services is not tried on a third. */
const MAX_ATTEMPTS = 2;

/** A service as the scheduler sees it. */
export interface SchedPeer {
  readonly threads: number;
  /** What READY announced: the most it may ever hold. */
  readonly announced: number;
  credit: number;
  inFlight: Set<LinkJob>;
  /**
   * Smoothed ms between completions while every thread was busy: the inverse
   * of the service's throughput, so a slow or overloaded service shows it
   * however much credit it announced. 0 until first measured.
   */
  msPerCompletion: number;
  lastCompletion: number;
  /** Said BYE: no new requests, replies still relayed. */
  leaving: boolean;
}

/** One request, from send() until its response is complete or given up. */
export interface LinkJob {
  connId: number;
  /** The encoded Mongrel2 request, sent again as is on a retry. */
  message: Buffer;
  method: string;
  peer: SchedPeer | undefined;
  /** A reply message arrived: bytes may have reached the client, so no retry. */
  replied: boolean;
  attempts: number;
  /** When it entered the gateway queue (performance.now()); -1 when not queued. */
  queuedAt: number;
  /**
   * An upload-start (§3.4): it costs a credit, which the service returns at once, and holds
   * no thread, so once sent it is off the service's in-flight set (the upload-done that
   * follows is a job of its own). Its peer still owns the id until then.
   */
  notice?: boolean;
}

/** A service's scheduling state at registration (READY). */
export function schedPeer(credit: number, threads: number): SchedPeer {
  return { threads, announced: credit, credit, inFlight: new Set(), msPerCompletion: 0, lastCompletion: 0, leaving: false };
}

export interface SchedulerOptions {
  /** Requests that may wait for credit. */
  maxQueue: number;
  /** Longest wait for credit in ms. */
  queueTimeoutMs: number;
  /** Defaults to performance.now. For tests. */
  now?: () => number;
}

export interface SchedulerActions<P extends SchedPeer> {
  /** Send `job` to `peer` now (its credit is already taken). */
  dispatch(job: LinkJob, peer: P): void;
  /** Give up on `job` (it is forgotten first): 503 no credit in time, 502 its service died. */
  fail(job: LinkJob, status: 502 | 503): void;
}

export class LinkScheduler<P extends SchedPeer> {
  /** `queueWaitMs` and `dequeued` add up the wait of every request that left the queue for a service. */
  readonly stats = { retried: 0, failed: 0, queueRejected: 0, dequeued: 0, queueWaitMs: 0 };
  readonly #peers = new Set<P>();
  readonly #jobs = new Map<number, LinkJob>();
  readonly #queue: LinkJob[] = [];
  readonly #opts: SchedulerOptions;
  readonly #act: SchedulerActions<P>;
  readonly #now: () => number;
  #drainScheduled = false;
  #closed = false;

  constructor(options: SchedulerOptions, actions: SchedulerActions<P>) {
    this.#opts = options;
    this.#act = actions;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Requests sent or queued and not finished. */
  get pending(): number {
    return this.#jobs.size;
  }

  /** Requests waiting for credit. */
  get queued(): number {
    return this.#queue.length;
  }

  /** The registered services (for views; the scheduler's own order). */
  peers(): IterableIterator<P> {
    return this.#peers.values();
  }

  job(connId: number): LinkJob | undefined {
    return this.#jobs.get(connId);
  }

  /** A service registered: it takes queued requests at once. */
  addPeer(peer: P): void {
    this.#peers.add(peer);
    this.#drain();
  }

  /**
   * Takes a request: to the best service now, else to the back of the queue (behind those
   * already waiting, even if credit came back this turn). False when the queue is full.
   */
  submit(job: LinkJob): boolean {
    const peer = this.#queue.length === 0 ? this.pick() : undefined;
    if (peer === undefined && this.#queue.length >= this.#opts.maxQueue) {
      this.stats.queueRejected++;
      return false;
    }
    this.#jobs.set(job.connId, job);
    if (peer) this.#dispatch(job, peer);
    else {
      this.#enqueue(job, false);
      this.#scheduleDrain();
    }
    return true;
  }

  /** The request is done (complete, or the client left): forgets it, off its service or the queue. */
  finish(connId: number): LinkJob | undefined {
    const job = this.#jobs.get(connId);
    if (!job) return undefined;
    this.#jobs.delete(connId);
    job.peer?.inFlight.delete(job);
    if (job.queuedAt >= 0) {
      job.queuedAt = -1;
      const at = this.#queue.indexOf(job);
      if (at >= 0) this.#queue.splice(at, 1);
    }
    return job;
  }

  /**
   * The service with credit that would finish one more request soonest: its
   * requests in flight times its measured time per completion. Until a
   * service has been measured, requests per thread stand in, so that
   * new services fill their threads first.
   */
  pick(): P | undefined {
    let best: P | undefined;
    let bestWait = Infinity;
    let bestLoad = Infinity;
    for (const peer of this.#peers) {
      if (peer.credit <= 0 || peer.leaving) continue;
      const load = peer.inFlight.size / peer.threads;
      // A free thread is always the soonest.
      const wait = load < 1 || peer.msPerCompletion === 0 ? 0 : (peer.inFlight.size + 1) * peer.msPerCompletion;
      if (wait < bestWait || (wait === bestWait && load < bestLoad)) {
        best = peer;
        bestWait = wait;
        bestLoad = load;
      }
    }
    return best;
  }

  /**
   * `n` credits came back from `peer` (a REPLY or CREDIT): measures its speed and lets queued
   * requests go. Returns false when it gave back more than it could hold (a bug on its side;
   * the excess is ignored).
   */
  credit(peer: P, n: number): boolean {
    if (n === 0) return true;
    const now = this.#now();
    // Only intervals in which every thread was busy measure the service's speed.
    if (peer.inFlight.size + n >= peer.threads && peer.lastCompletion > 0) {
      const sample = (now - peer.lastCompletion) / n;
      peer.msPerCompletion = peer.msPerCompletion === 0 ? sample : peer.msPerCompletion * 0.9 + sample * 0.1;
    }
    peer.lastCompletion = now;
    const cap = peer.announced - peer.inFlight.size;
    const fits = peer.credit + n <= cap;
    peer.credit = Math.min(peer.credit + n, cap);
    if (!peer.leaving) this.#scheduleDrain();
    return fits;
  }

  /** A service said BYE and left with nothing in flight: just forget it. */
  forgetPeer(peer: P): void {
    this.#peers.delete(peer);
  }

  /**
   * A service died: each request it held goes to another service (front of the queue if none
   * has credit) when its method is idempotent, no reply of it arrived yet and it was not
   * retried before; every other one fails with 502.
   */
  losePeer(peer: P): { retried: number; failed: number } {
    this.#peers.delete(peer);
    const held = [...peer.inFlight];
    peer.inFlight.clear();
    let retried = 0;
    let failed = 0;
    for (const job of held) {
      job.peer = undefined;
      if (!job.replied && IDEMPOTENT.has(job.method) && job.attempts < MAX_ATTEMPTS && !this.#closed) {
        retried++;
        const next = this.pick();
        if (next) this.#dispatch(job, next);
        else this.#enqueue(job, true);
      } else {
        failed++;
        this.#jobs.delete(job.connId);
        this.#act.fail(job, 502);
      }
    }
    this.stats.retried += retried;
    this.stats.failed += failed;
    return { retried, failed };
  }

  /** 503 for requests that waited for credit longer than the queue timeout (retries go in front, so scan all). */
  expireQueued(): void {
    if (this.#queue.length === 0) return;
    const limit = this.#now() - this.#opts.queueTimeoutMs;
    for (const job of this.#queue.filter((j) => j.queuedAt <= limit)) {
      this.stats.queueRejected++;
      this.finish(job.connId);
      this.#act.fail(job, 503);
    }
  }

  /** No more retries; every queued request fails with 503 now. */
  close(): void {
    this.#closed = true;
    for (const job of [...this.#queue]) {
      this.finish(job.connId);
      this.#act.fail(job, 503);
    }
  }

  #dispatch(job: LinkJob, peer: P): void {
    peer.credit--;
    peer.inFlight.add(job);
    job.peer = peer;
    job.attempts++;
    this.#act.dispatch(job, peer);
    if (job.notice === true) peer.inFlight.delete(job);
  }

  #enqueue(job: LinkJob, first: boolean): void {
    job.peer = undefined;
    // A retried request goes in front with the time of its retry.
    if (job.queuedAt < 0) job.queuedAt = this.#now();
    if (first) this.#queue.unshift(job);
    else this.#queue.push(job);
  }

  /**
   * Drains once the replies read in this turn are handled, so that the
   * requests they free go out together rather than one send per reply from
   * inside the ROUTER's receive loop. New requests queue behind waiting ones.
   */
  #scheduleDrain(): void {
    if (this.#drainScheduled || this.#queue.length === 0) return;
    this.#drainScheduled = true;
    setImmediate(() => {
      this.#drainScheduled = false;
      this.#drain();
    });
  }

  /** Hands queued requests to services that have credit again. */
  #drain(): void {
    while (this.#queue.length > 0) {
      const peer = this.pick();
      if (!peer) return;
      const job = this.#queue.shift()!;
      this.stats.dequeued++;
      this.stats.queueWaitMs += this.#now() - job.queuedAt;
      job.queuedAt = -1;
      this.#dispatch(job, peer);
    }
  }
}
