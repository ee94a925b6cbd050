/**
 * A Handler served over the m2gate link (protocol/m2gate-link.md): a ROUTER
 * bound on the Handler's send_spec, m2gate services connected with DEALER.
 * Unlike PUSH/SUB it knows which service holds which request, sends only to
 * services with credit (least loaded first), and answers at once for the
 * requests of a service that dies: a retry elsewhere when that is safe, 502
 * otherwise. This file is the mechanism (socket, registration, heartbeats,
 * replies); the policy (credit, pick, queue, retries) is link-scheduler.ts.
 */
import { UPLOAD_DONE, UPLOAD_START } from '../upload-spool.js';
import { Router } from 'zeromq';
import type { Logger } from 'pino';
import { encodeCredits } from '../../protocol/download-credits.js';
import { encodeDisconnect, encodeRequest, type HeaderEncoding, type RequestFields } from '../../protocol/m2-request.js';
import { decodeBatchItem, decodeLink, encodeLink, FEATURE_BATCH, type LinkMessage } from '../../protocol/link-frames.js';
import { LinkOutbox } from '../../zmq/link-outbox.js';
import type { ConfigHandler } from '../../protocol/mongrel2-conf.js';
import { SendQueue } from '../../zmq/send-queue.js';
import { ReplyDispatch, type HandlerPoolStats, type ReplySink } from './reply-dispatch.js';
import { serverSocketOptions, type CurveConfig } from '../../zmq/curve-config.js';
import type { HandlerTarget, PoolServiceView, PoolView } from './handler-target.js';
import { LinkScheduler, schedPeer, type LinkJob, type SchedPeer } from './link-scheduler.js';
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

/** A registered service: its socket identity and liveness here, its scheduling state in LinkScheduler. */
interface Peer extends SchedPeer {
  id: Buffer;
  key: string;
  name: string;
  liveness: Liveness;
  /** Made once per peer: they run for every message. */
  owns: (connId: number) => boolean;
  onReplied: (connId: number) => void;
  /** A reply from this peer named an id it does not hold: it hears that id is gone (§4.6). */
  onUnknown: (connId: number) => void;
  onSendFailure: (err: unknown) => void;
  /** What goes to this service: one BATCH per turn once it said FEATURES batch. */
  outbox: LinkOutbox;
  /** The service's latest METRICS report, parsed; replaced by each new one. */
  report: unknown[] | undefined;
}

/** How long a lost service stays on the dashboard, marked down. */
const LOST_SHOWN_MS = 60_000;
const LOST_SHOWN_MAX = 16;
/** A METRICS report larger than this is dropped (a service's is a few KiB). */
const MAX_REPORT_BYTES = 1 << 20;

const HEARTBEAT = encodeLink({ command: 'HEARTBEAT' });
const BYE = encodeLink({ command: 'BYE' });
const FEATURES = encodeLink({ command: 'FEATURES', features: [FEATURE_BATCH] });

export class LinkPool implements HandlerTarget {
  readonly config: ConfigHandler;
  readonly #log: Logger;
  readonly #replies: ReplyDispatch;
  readonly #router: Router;
  readonly #out: SendQueue;
  readonly #peers = new Map<string, Peer>();
  readonly #sched: LinkScheduler<Peer>;
  readonly #livenessOptions: LivenessOptions;
  readonly #queueTimeoutMs: number;
  readonly #linkStats = { registered: 0, lost: 0, malformedLink: 0 };
  #peerWaiters: Array<() => void> = [];
  /** WebSocket connections (hold()) and the service that holds each. */
  readonly #held = new Map<number, Peer>();
  /** Services lost lately, newest last: shown as down for LOST_SHOWN_MS. */
  #lost: Array<{ name: string; threads: number; at: number }> = [];
  #heartbeat: NodeJS.Timeout | undefined;
  #queueSweep: NodeJS.Timeout | undefined;
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
    this.#queueTimeoutMs = options.queueTimeoutMs ?? 10_000;
    this.#sched = new LinkScheduler<Peer>(
      { maxQueue: options.maxQueue ?? 256, queueTimeoutMs: this.#queueTimeoutMs },
      {
        dispatch: (job, peer) => this.#sendTo(peer, encodeLink({ command: 'REQUEST', message: job.message })),
        fail: (job, status) => this.#replies.fail(job.connId, status, status === 503 ? 'Service Unavailable' : 'Bad Gateway'),
      },
    );
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
    return { ...this.#replies.stats, ...this.#linkStats, ...this.#sched.stats };
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
    return this.#sched.pending;
  }

  /** Requests waiting for credit. */
  get queued(): number {
    return this.#sched.queued;
  }

  view(): PoolView {
    const now = Date.now();
    const services: PoolServiceView[] = [];
    let threads = 0;
    let held = 0;
    let free = 0;
    const reports: PoolView['reports'] = [];
    for (const peer of this.#peers.values()) {
      threads += peer.threads;
      held += peer.inFlight.size;
      free += peer.credit;
      services.push({ name: peer.name, up: true, threads: peer.threads, held: peer.inFlight.size, creditFree: peer.credit, lastHeardMs: Math.max(0, now - peer.liveness.lastHeard), leaving: peer.leaving });
      if (peer.report) reports.push({ service: peer.name, metrics: peer.report });
    }
    this.#lost = this.#lost.filter((l) => now - l.at < LOST_SHOWN_MS);
    for (const l of this.#lost) {
      // A service that registered again under the same name is not down.
      if (!services.some((s) => s.name === l.name)) services.push({ name: l.name, up: false, threads: l.threads, held: 0, creditFree: 0, lastHeardMs: now - l.at, leaving: false });
    }
    const st = this.#sched.stats;
    return { connected: this.services, services, threads, creditHeld: held, creditFree: free, queueDepth: this.#sched.queued, retries: st.retried, queueRejected: st.queueRejected, serviceLost: st.failed, reports };
  }

  /** Sum of the waits of requests that left the queue for a service, and their number. */
  get queueWait(): { seconds: number; count: number } {
    return { seconds: this.#sched.stats.queueWaitMs / 1000, count: this.#sched.stats.dequeued };
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
    this.#queueSweep = setInterval(() => this.#sched.expireQueued(), Math.max(10, Math.min(250, this.#queueTimeoutMs / 10)));
    this.#queueSweep.unref();
  }

  send(fields: Omit<RequestFields, 'sender'>, sink: ReplySink): boolean {
    if (this.#closed || !this.hasPeers) return false;
    const message = encodeRequest({ ...fields, sender: this.config.sendIdent }, this.config.protocol);
    const method = fields.headers.METHOD;
    const job: LinkJob = { connId: fields.connId, message, method: typeof method === 'string' ? method : 'GET', peer: undefined, replied: false, attempts: 0, queuedAt: -1 };
    if (fields.headers[UPLOAD_START] !== undefined && fields.headers[UPLOAD_DONE] === undefined) job.notice = true;
    // The upload-done of an upload whose start went (or still waits) as a notice replaces it.
    this.#sched.finish(job.connId);
    // Registered first: submit() may dispatch at once.
    this.#replies.register(job.connId, sink);
    if (!this.#sched.submit(job)) {
      this.#replies.forget(job.connId);
      return false;
    }
    this.#replies.stats.sent++;
    return true;
  }

  release(connId: number): void {
    this.#replies.release(connId);
    this.#sched.finish(connId);
    this.#held.delete(connId);
  }

  /**
   * The handshake's job is done (its credit comes back with the 101) but the
   * connection stays with that service: its frames go there as FRAME, which
   * uses no credit (protocol/m2gate-link.md).
   */
  hold(connId: number): void {
    const peer = this.#sched.job(connId)?.peer as Peer | undefined;
    if (!peer) return;
    this.#held.set(connId, peer);
    this.#sched.finish(connId);
  }

  sendMore(fields: Omit<RequestFields, 'sender'>, sink: ReplySink): boolean {
    // Before the 101 the handshake's job still names its service.
    const peer = this.#held.get(fields.connId) ?? (this.#sched.job(fields.connId)?.peer as Peer | undefined);
    if (this.#closed || !peer || this.#peers.get(peer.key) !== peer) return false;
    this.#replies.register(fields.connId, sink);
    this.#sendTo(peer, encodeLink({ command: 'FRAME', message: encodeRequest({ ...fields, sender: this.config.sendIdent }, this.config.protocol) }));
    this.#replies.stats.sent++;
    return true;
  }

  disconnect(connId: number): void {
    this.#replies.forget(connId);
    const held = this.#held.get(connId);
    if (held) {
      this.#held.delete(connId);
      if (!this.#closed) this.#sendTo(held, encodeLink({ command: 'DISCONNECT', message: encodeDisconnect(this.config.sendIdent, connId, this.config.protocol) }));
      return;
    }
    const job = this.#sched.finish(connId);
    // Only the service holding the request hears of it (§3.6 can only load-balance).
    // The scheduler only ever holds this pool's own peers.
    if (job?.peer) this.#tellGone(job.peer as Peer, connId);
  }

  /** Mongrel2's disconnect notice for `connId` (§3.6), to `peer` alone. */
  #tellGone(peer: Peer, connId: number): void {
    if (this.#closed) return;
    const notice = encodeDisconnect(this.config.sendIdent, connId, this.config.protocol);
    this.#sendTo(peer, encodeLink({ command: 'DISCONNECT', message: notice }));
  }

  /** Only the service holding the request pays out its download, so only it hears of credits. */
  credits(connId: number, bytes: number): void {
    const peer = this.#sched.job(connId)?.peer as Peer | undefined;
    if (peer && !this.#closed) this.#sendTo(peer, encodeLink({ command: 'NOTICE', message: encodeCredits(this.config.sendIdent, connId, bytes, this.config.protocol) }));
  }

  #sendTo(peer: Peer, frames: Buffer[]): void {
    peer.liveness.sent();
    peer.outbox.push(frames[0]!);
  }

  async #readLoop(): Promise<void> {
    try {
      for await (const frames of this.#router) this.#onMessage(frames);
    } catch (err) {
      if (!this.#closed) this.#log.error({ err }, 'link receive loop failed');
    }
  }

  /**
   * A message's frames (without the routing id), or one message of a BATCH; undefined when it
   * breaks the link's rules (counted, the first one logged).
   */
  #decode(frames: Buffer[] | Buffer, key: string): LinkMessage | undefined {
    try {
      return Array.isArray(frames) ? decodeLink(frames) : decodeBatchItem(frames);
    } catch (err) {
      this.#linkStats.malformedLink++;
      if (!this.#warnedVersion) {
        this.#warnedVersion = true;
        this.#log.warn({ err: (err as Error).message, peer: key }, 'malformed link message dropped (further ones are only counted)');
      }
      return undefined;
    }
  }

  #onMessage(frames: Buffer[]): void {
    const id = frames[0]!;
    const key = id.toString('hex');
    const message = this.#decode(frames.slice(1), key);
    if (message === undefined) return;
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
    if (message.command === 'BATCH') {
      // One bad message in a batch costs only itself.
      for (const frame of message.frames) {
        const item = this.#decode(frame, key);
        // Only while the peer is still this one: the batch is read in one go.
        if (item !== undefined && this.#peers.get(key) === peer) this.#onPeerMessage(peer, item);
      }
      return;
    }
    this.#onPeerMessage(peer, message);
  }

  #onPeerMessage(peer: Peer, message: LinkMessage): void {
    switch (message.command) {
      case 'REPLY':
        this.#replies.deliver(message.message, peer);
        this.#credit(peer, message.credit);
        return;
      case 'CREDIT':
        this.#credit(peer, message.credit);
        return;
      case 'HEARTBEAT':
        return;
      case 'METRICS':
        peer.report = parseReport(message.report);
        return;
      case 'FEATURES':
        // The service reads BATCH (it answered ours, sent with the registration).
        if (message.features.includes(FEATURE_BATCH)) peer.outbox.enableBatches();
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
      ...schedPeer(credit, threads),
      id,
      key,
      name,
      liveness: new Liveness(this.#livenessOptions),
      // The link's rule: only the service holding a request may answer it.
      owns: (connId) => this.#sched.job(connId)?.peer === peer || this.#held.get(connId) === peer,
      onReplied: (connId) => {
        const job = this.#sched.job(connId);
        if (job) job.replied = true;
      },
      onUnknown: (connId) => this.#tellGone(peer, connId),
      onSendFailure: (err) => {
        // EHOSTUNREACH: the peer's connection is gone.
        this.#lose(peer, (err as { code?: string }).code ?? 'send failed');
      },
      outbox: new LinkOutbox((frame) => this.#out.send([id, frame], peer.onSendFailure)),
      report: undefined,
    };
    this.#peers.set(key, peer);
    this.#linkStats.registered++;
    // The answer tells the service it is registered; FEATURES offers batches, which the
    // service accepts by answering FEATURES batch (a service that does not know it drops it).
    this.#sendTo(peer, HEARTBEAT);
    this.#sendTo(peer, FEATURES);
    this.#log.info({ service: name, credit, threads, services: this.services }, 'handler connected');
    for (const resolve of this.#peerWaiters.splice(0)) resolve();
    this.#sched.addPeer(peer);
  }

  #credit(peer: Peer, n: number): void {
    // A service cannot hold more than it announced: credit beyond that is a bug on its side.
    if (!this.#sched.credit(peer, n)) this.#linkStats.malformedLink++;
  }

  /** A service that said BYE closed its connection with nothing in flight. */
  #forget(peer: Peer): void {
    this.#peers.delete(peer.key);
    peer.outbox.drop();
    this.#sched.forgetPeer(peer);
    // Its WebSockets are not in flight after their 101, yet they end with it too.
    this.#cutHeld(peer);
    this.#log.info({ service: peer.name, services: this.services }, 'handler disconnected');
  }

  /** A service died: the scheduler answers or moves each of its requests now. */
  #lose(peer: Peer, why: string): void {
    if (this.#peers.get(peer.key) !== peer) return;
    if (peer.leaving && peer.inFlight.size === 0) return this.#forget(peer);
    this.#peers.delete(peer.key);
    peer.outbox.drop();
    this.#linkStats.lost++;
    this.#lost.push({ name: peer.name, threads: peer.threads, at: Date.now() });
    if (this.#lost.length > LOST_SHOWN_MAX) this.#lost.shift();
    const { retried, failed } = this.#sched.losePeer(peer);
    this.#cutHeld(peer);
    // While the gateway closes, services leaving is the expected end, not a fault.
    if (this.#closed) this.#log.info({ service: peer.name, why, services: this.services }, 'handler gone (gateway closing)');
    else this.#log.warn({ service: peer.name, why, retried, failed, services: this.services }, 'handler lost');
  }

  /** Its WebSockets end with it: their state was in that service. */
  #cutHeld(peer: Peer): void {
    for (const [connId, holder] of this.#held) {
      if (holder !== peer) continue;
      this.#held.delete(connId);
      this.#replies.fail(connId, 502, 'Bad Gateway');
    }
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
    // Queued requests get 503 now; a service lost from here on gets no retries.
    this.#sched.close();
    for (const peer of this.#peers.values()) {
      peer.outbox.flush();
      this.#out.send([peer.id, ...BYE]);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#out.flush(), new Promise<void>((resolve) => (timer = setTimeout(resolve, flushTimeoutMs)))]);
    clearTimeout(timer);
    this.#router.close();
    await this.#reading;
  }
}

/** A METRICS payload: a JSON array (prom-client's getMetricsAsJSON form), else undefined. */
function parseReport(bytes: Buffer): unknown[] | undefined {
  if (bytes.length > MAX_REPORT_BYTES) return undefined;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
