/**
 * A Handler served over the m2gate link (protocol/m2gate-link.md): a ROUTER
 * bound on the Handler's send_spec, m2gate services connected with DEALER.
 * Unlike PUSH/SUB it knows which service holds which request, sends only to
 * services with credit (least loaded first), and answers at once for the
 * requests of a service that dies: a retry elsewhere when that is safe, 502
 * otherwise.
 */
import { performance } from 'node:perf_hooks';
import { Router } from 'zeromq';
import type { Logger } from 'pino';
import { encodeDisconnect, encodeRequest, type HeaderEncoding, type RequestFields } from '../../protocol/m2-request.js';
import { decodeLink, encodeLink, type LinkMessage } from '../../protocol/link-frames.js';
import type { ConfigHandler } from '../../protocol/mongrel2-conf.js';
import { SendQueue } from '../../zmq/send-queue.js';
import { ReplyDispatch, type HandlerPoolStats, type ReplySink } from './reply-dispatch.js';
import { serverSocketOptions, type CurveConfig } from '../../zmq/curve-config.js';
import type { HandlerTarget } from './handler-target.js';
import { LIVENESS_DEFAULTS, Liveness, Verdict, type LivenessOptions } from '../../zmq/link-liveness.js';

/** Heartbeats (zmq/link-liveness.ts: `heartbeatMs`, `liveness`), the queue bound and its timeout. */
export interface LinkOptions extends LivenessOptions {
  /** Requests that may wait for credit before 503. Defaults to 256. */
  maxQueue?: number;
  /** Longest wait for credit, in ms, before 503 (with GatewayOptions.retryAfterSeconds). Defaults to 10,000. */
  queueTimeoutMs?: number;
}

export interface LinkStats extends HandlerPoolStats {
  /** Services that registered with READY. */
  registered: number;
  /** Services forgotten because their connection dropped or their heartbeats stopped. */
  lost: number;
  /** Requests sent again to another service after theirs died. */
  retried: number;
  /** Requests answered 502 because their service died. */
  failed: number;
  /** Requests answered 503 because no credit came in time or the queue was full. */
  queueRejected: number;
  /** Messages that broke protocol/m2gate-link.md. */
  malformedLink: number;
}

/** Methods that may be sent twice (RFC 9110 §9.2.2), as the link spec lists them. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);
const MAX_ATTEMPTS = 2;

interface Peer {
  id: Buffer;
  key: string;
  name: string;
  threads: number;
  /** What READY announced: the most it may ever hold. */
  announced: number;
  credit: number;
  inFlight: Set<Job>;
  liveness: Liveness;
  /**
   * Smoothed ms between completions while every thread was busy: the inverse
   * of the service's throughput, so a slow or overloaded service shows it
   * however much credit it announced. 0 until first measured.
   */
  msPerCompletion: number;
  lastCompletion: number;
  /** Said BYE: no new requests, replies still relayed. */
  leaving: boolean;
  /** Made once per peer: they run for every message. */
  owns: (connId: number) => boolean;
  onReplied: (connId: number) => void;
  onSendFailure: (err: unknown) => void;
}

interface Job {
  connId: number;
  message: Buffer;
  method: string;
  peer: Peer | undefined;
  /** A reply message arrived: bytes may have reached the client, so no retry. */
  replied: boolean;
  attempts: number;
  /** When it entered the gateway queue (performance.now()); -1 when not queued. */
  queuedAt: number;
}

const HEARTBEAT = encodeLink({ command: 'HEARTBEAT' });
const BYE = encodeLink({ command: 'BYE' });

export class LinkPool implements HandlerTarget {
  readonly config: ConfigHandler;
  readonly #log: Logger;
  readonly #replies: ReplyDispatch;
  readonly #router: Router;
  readonly #out: SendQueue;
  readonly #peers = new Map<string, Peer>();
  readonly #jobs = new Map<number, Job>();
  readonly #queue: Job[] = [];
  readonly #livenessOptions: LivenessOptions;
  readonly #maxQueue: number;
  readonly #queueTimeoutMs: number;
  readonly #linkStats = { registered: 0, lost: 0, retried: 0, failed: 0, queueRejected: 0, malformedLink: 0 };
  #peerWaiters: Array<() => void> = [];
  #heartbeat: NodeJS.Timeout | undefined;
  #queueSweep: NodeJS.Timeout | undefined;
  #drainScheduled = false;
  #reading: Promise<void> | undefined;
  #closed = false;
  #warnedVersion = false;

  /** With `curve`, the ROUTER is a CURVE server: only allow-listed services may connect. */
  constructor(config: ConfigHandler, log: Logger, options: LinkOptions = {}, curve?: CurveConfig) {
    this.config = config;
    // sendTimeout 0: a send to a peer whose pipe is going away (not yet
    // EHOSTUNREACH) would otherwise wait, and with one send queue for all
    // peers hold up every other service (seen at shutdown: BYE to a service
    // that had just left waited until the socket closed). Credit keeps live
    // peers far below the high-water mark, so EAGAIN means a dead peer.
    this.#router = new Router({
      mandatory: true,
      sendTimeout: 0,
      sendHighWaterMark: 100_000,
      receiveHighWaterMark: 100_000,
      linger: 1000,
      ...serverSocketOptions(curve),
    });
    this.#log = log.child({ handler: config.sendIdent, transport: 'link' });
    this.#replies = new ReplyDispatch(config.sendIdent, this.#log);
    this.#livenessOptions = { heartbeatMs: options.heartbeatMs ?? LIVENESS_DEFAULTS.heartbeatMs, liveness: options.liveness ?? LIVENESS_DEFAULTS.liveness };
    this.#maxQueue = options.maxQueue ?? 256;
    this.#queueTimeoutMs = options.queueTimeoutMs ?? 10_000;
    this.#out = new SendQueue(this.#router, { maxQueued: 100_000, onError: (err) => this.#log.error({ err }, 'link send failed') });
    // A dropped connection (SIGKILL, crash) shows here long before heartbeats
    // miss; the event does not say which peer it was, so probe them all: with
    // `mandatory`, a send to a peer whose connection is gone fails at once.
    this.#router.events.on('disconnect', () => {
      for (const peer of this.#peers.values()) this.#sendTo(peer, HEARTBEAT);
    });
  }

  /** A snapshot. */
  get stats(): LinkStats {
    return { ...this.#replies.stats, ...this.#linkStats };
  }

  get encoding(): HeaderEncoding {
    return this.config.protocol;
  }

  /** Services registered and not leaving. */
  get services(): number {
    let n = 0;
    for (const peer of this.#peers.values()) if (!peer.leaving) n++;
    return n;
  }

  get hasPeers(): boolean {
    return this.services > 0;
  }

  get pending(): number {
    return this.#jobs.size;
  }

  /** Requests waiting for credit. */
  get queued(): number {
    return this.#queue.length;
  }

  whenPeer(): Promise<void> {
    if (this.hasPeers) return Promise.resolve();
    return new Promise((resolve) => this.#peerWaiters.push(resolve));
  }

  async bind(): Promise<void> {
    await this.#router.bind(this.config.sendSpec);
    this.#reading = this.#readLoop();
    this.#heartbeat = setInterval(() => this.#tick(), this.#livenessOptions.heartbeatMs);
    this.#heartbeat.unref();
    // One sweep instead of a timer per queued request (a timer each cost
    // measurable CPU under load, when most requests wait for credit).
    this.#queueSweep = setInterval(() => this.#expireQueued(), Math.max(10, Math.min(250, this.#queueTimeoutMs / 10)));
    this.#queueSweep.unref();
  }

  send(fields: Omit<RequestFields, 'sender'>, sink: ReplySink): boolean {
    if (this.#closed || !this.hasPeers) return false;
    const message = encodeRequest({ ...fields, sender: this.config.sendIdent }, this.config.protocol);
    const method = fields.headers.METHOD;
    const job: Job = { connId: fields.connId, message, method: typeof method === 'string' ? method : 'GET', peer: undefined, replied: false, attempts: 0, queuedAt: -1 };
    // Behind those already waiting (FIFO), even if credit came back this turn.
    const peer = this.#queue.length === 0 ? this.#pick() : undefined;
    if (peer === undefined && this.#queue.length >= this.#maxQueue) {
      this.#linkStats.queueRejected++;
      return false;
    }
    this.#jobs.set(job.connId, job);
    this.#replies.register(job.connId, sink);
    this.#replies.stats.sent++;
    if (peer) this.#dispatch(job, peer);
    else {
      this.#enqueue(job, false);
      this.#scheduleDrain();
    }
    return true;
  }

  release(connId: number): void {
    this.#replies.release(connId);
    this.#finish(connId);
  }

  disconnect(connId: number): void {
    this.#replies.forget(connId);
    const job = this.#finish(connId);
    // Only the service holding the request hears of it (§3.6 can only load-balance).
    if (job?.peer && !this.#closed) {
      const notice = encodeDisconnect(this.config.sendIdent, connId, this.config.protocol);
      this.#sendTo(job.peer, encodeLink({ command: 'DISCONNECT', message: notice }));
    }
  }

  #finish(connId: number): Job | undefined {
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
  #pick(): Peer | undefined {
    let best: Peer | undefined;
    let bestWait = Infinity;
    let bestLoad = Infinity;
    for (const peer of this.#peers.values()) {
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

  #dispatch(job: Job, peer: Peer): void {
    peer.credit--;
    peer.inFlight.add(job);
    job.peer = peer;
    job.attempts++;
    this.#sendTo(peer, encodeLink({ command: 'REQUEST', message: job.message }));
  }

  #enqueue(job: Job, first: boolean): void {
    job.peer = undefined;
    // A retried request goes in front with the time of its retry.
    if (job.queuedAt < 0) job.queuedAt = performance.now();
    if (first) this.#queue.unshift(job);
    else this.#queue.push(job);
  }

  /** 503 for requests that waited for credit longer than the queue timeout (retries go in front, so scan all). */
  #expireQueued(): void {
    if (this.#queue.length === 0) return;
    const limit = performance.now() - this.#queueTimeoutMs;
    for (const job of this.#queue.filter((j) => j.queuedAt <= limit)) {
      this.#linkStats.queueRejected++;
      this.#finish(job.connId);
      this.#replies.fail(job.connId, 503, 'Service Unavailable');
    }
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
      const peer = this.#pick();
      if (!peer) return;
      const job = this.#queue.shift()!;
      job.queuedAt = -1;
      this.#dispatch(job, peer);
    }
  }

  #sendTo(peer: Peer, frames: Buffer[]): void {
    peer.liveness.sent();
    this.#out.send([peer.id, ...frames], peer.onSendFailure);
  }

  async #readLoop(): Promise<void> {
    try {
      for await (const frames of this.#router) this.#onMessage(frames);
    } catch (err) {
      if (!this.#closed) this.#log.error({ err }, 'link receive loop failed');
    }
  }

  #onMessage(frames: Buffer[]): void {
    const id = frames[0]!;
    const key = id.toString('hex');
    let message: LinkMessage;
    try {
      message = decodeLink(frames.slice(1));
    } catch (err) {
      this.#linkStats.malformedLink++;
      if (!this.#warnedVersion) {
        this.#warnedVersion = true;
        this.#log.warn({ err: (err as Error).message, peer: key }, 'malformed link message dropped (further ones are only counted)');
      }
      return;
    }
    const peer = this.#peers.get(key);
    if (message.command === 'READY') {
      if (peer) this.#lose(peer, 'registered again');
      this.#register(id, key, message.credit, message.threads, message.name);
      return;
    }
    if (!peer) {
      // A service registered with an earlier gateway (or forgotten by this
      // one): BYE makes it register again.
      if (message.command !== 'BYE') void this.#router.send([id, ...BYE]).catch(() => {});
      return;
    }
    peer.liveness.heard();
    switch (message.command) {
      case 'REPLY':
        this.#replies.deliver(message.message, peer.owns, peer.onReplied);
        this.#credit(peer, message.credit);
        return;
      case 'CREDIT':
        this.#credit(peer, message.credit);
        return;
      case 'HEARTBEAT':
        return;
      case 'BYE':
        peer.leaving = true;
        // Forgotten when its connection closes; until then its replies still count.
        this.#log.info({ service: peer.name, inFlight: peer.inFlight.size }, 'service leaving');
        return;
      default:
        this.#linkStats.malformedLink++;
        this.#log.warn({ command: message.command, service: peer.name }, 'a gateway-only command from a service dropped');
    }
  }

  #register(id: Buffer, key: string, credit: number, threads: number, name: string): void {
    const peer: Peer = {
      id,
      key,
      name,
      threads,
      announced: credit,
      credit,
      inFlight: new Set(),
      liveness: new Liveness(this.#livenessOptions),
      msPerCompletion: 0,
      lastCompletion: 0,
      leaving: false,
      // The link's rule: only the service holding a request may answer it.
      owns: (connId) => this.#jobs.get(connId)?.peer === peer,
      onReplied: (connId) => {
        const job = this.#jobs.get(connId);
        if (job) job.replied = true;
      },
      onSendFailure: (err) => {
        // EHOSTUNREACH: the peer's connection is gone.
        this.#lose(peer, (err as { code?: string }).code ?? 'send failed');
      },
    };
    this.#peers.set(key, peer);
    this.#linkStats.registered++;
    // The answer tells the service it is registered.
    this.#sendTo(peer, HEARTBEAT);
    this.#log.info({ service: name, credit, threads, services: this.services }, 'handler connected');
    for (const resolve of this.#peerWaiters.splice(0)) resolve();
    this.#drain();
  }

  #credit(peer: Peer, n: number): void {
    if (n === 0) return;
    const now = performance.now();
    // Only intervals in which every thread was busy measure the service's speed.
    if (peer.inFlight.size + n >= peer.threads && peer.lastCompletion > 0) {
      const sample = (now - peer.lastCompletion) / n;
      peer.msPerCompletion = peer.msPerCompletion === 0 ? sample : peer.msPerCompletion * 0.9 + sample * 0.1;
    }
    peer.lastCompletion = now;
    // A service cannot hold more than it announced: credit beyond that is a bug on its side.
    const cap = peer.announced - peer.inFlight.size;
    if (peer.credit + n > cap) this.#linkStats.malformedLink++;
    peer.credit = Math.min(peer.credit + n, cap);
    if (!peer.leaving) this.#scheduleDrain();
  }

  /** A service that said BYE closed its connection with nothing in flight. */
  #forget(peer: Peer): void {
    this.#peers.delete(peer.key);
    this.#log.info({ service: peer.name, services: this.services }, 'handler disconnected');
  }

  /** A service died: answer each of its requests now. */
  #lose(peer: Peer, why: string): void {
    if (this.#peers.get(peer.key) !== peer) return;
    if (peer.leaving && peer.inFlight.size === 0) return this.#forget(peer);
    this.#peers.delete(peer.key);
    this.#linkStats.lost++;
    const held = [...peer.inFlight];
    peer.inFlight.clear();
    let retried = 0;
    let failed = 0;
    for (const job of held) {
      job.peer = undefined;
      if (!job.replied && IDEMPOTENT.has(job.method) && job.attempts < MAX_ATTEMPTS && !this.#closed) {
        retried++;
        const next = this.#pick();
        if (next) this.#dispatch(job, next);
        else this.#enqueue(job, true);
      } else {
        failed++;
        this.#jobs.delete(job.connId);
        this.#replies.fail(job.connId, 502, 'Bad Gateway');
      }
    }
    this.#linkStats.retried += retried;
    this.#linkStats.failed += failed;
    this.#log.warn({ service: peer.name, why, retried, failed, services: this.services }, 'handler lost');
  }

  #tick(): void {
    const now = Date.now();
    for (const peer of [...this.#peers.values()]) {
      const verdict = peer.liveness.check(now);
      if (verdict === Verdict.DEAD) this.#lose(peer, 'heartbeats missed');
      else if (verdict === Verdict.BEAT) this.#sendTo(peer, HEARTBEAT);
    }
  }

  /** Says BYE to every service (they wait for a new gateway), flushes for at most `flushTimeoutMs`, closes. */
  async close(flushTimeoutMs = 1000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearInterval(this.#queueSweep);
    for (const job of [...this.#queue]) {
      this.#finish(job.connId);
      this.#replies.fail(job.connId, 503, 'Service Unavailable');
    }
    for (const peer of this.#peers.values()) this.#out.send([peer.id, ...BYE]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#out.flush(), new Promise<void>((resolve) => (timer = setTimeout(resolve, flushTimeoutMs)))]);
    clearTimeout(timer);
    this.#router.close();
    await this.#reading;
  }
}
