/**
 * The service's end of the m2gate link (protocol/m2gate-link.md): a DEALER
 * connected to the gateway's ROUTER. It registers with READY, returns credit
 * as requests end, heartbeats, and when the gateway is lost (BYE, the
 * connection drops, or silence) starts over on a new socket with backoff, so a
 * restarted gateway gets the service back without a restart.
 */
import { Dealer } from 'zeromq';
import type { Logger } from 'pino';
import { decodeBatchItem, decodeLink, encodeLink, FEATURE_BATCH, type LinkMessage } from '../protocol/link-frames.js';
import { SendQueue } from '../zmq/send-queue.js';
import { LinkOutbox } from '../zmq/link-outbox.js';
import type { Front, FrontEvents } from './front.js';
import { clientSocketOptions, type CurveConfig, type CurveSocketOptions } from '../zmq/curve-config.js';
import { LIVENESS_DEFAULTS, Liveness, Verdict } from '../zmq/link-liveness.js';

export interface LinkFrontOptions {
  /** The gateway's ROUTER endpoint: the Handler's send_spec. */
  endpoint: string;
  /** Requests the service may hold at once (announced in READY). */
  credit: number;
  threads: number;
  /** Shown in the gateway's logs. */
  name: string;
  /** Heartbeat interval; defaults to 1,000 ms (zmq/link-liveness.ts). */
  heartbeatMs?: number;
  /** Silent intervals before the gateway counts as lost; defaults to 3. */
  liveness?: number;
  /** CURVE client keys (this service's pair and the gateway's public key). */
  curve?: CurveConfig | undefined;
  log: Logger;
  /** The service's metrics for the gateway (METRICS, protocol/m2gate-link.md): sent on registering and every REPORT_EVERY_MS. */
  report?: (() => Promise<Buffer>) | undefined;
  /** Passed with every event, when the service joins several gateways (multi-link-front.ts). */
  origin?: number;
}

/** How often a service sends its METRICS report: often enough for a dashboard, rare enough to cost nothing. */
const REPORT_EVERY_MS = 5000;

const HEARTBEAT = encodeLink({ command: 'HEARTBEAT' });
const BYE = encodeLink({ command: 'BYE' });
const FEATURES = encodeLink({ command: 'FEATURES', features: [FEATURE_BATCH] });
const FIRST_BACKOFF_MS = 100;
/**
 * After BYE, REQUESTs the gateway sent before it read the BYE may still be on their way (one
 * network round trip); they are served, so the drain waits this long before it may end.
 */
const LEAVE_GRACE_MS = 100;
const MAX_BACKOFF_MS = 5000;

export class LinkFront implements Front {
  readonly #opts: Required<Omit<LinkFrontOptions, 'log' | 'curve' | 'report' | 'origin'>>;
  readonly #origin: number | undefined;
  /**
   * Credit is only ever announced in READY, and a gateway refuses credit
   * beyond what was announced. So a share lowered later (setShare) is reached
   * by keeping returned credits back (#withheld), and raised again, up to the
   * announcement, by returning them.
   */
  #announced = 0;
  #target: number;
  #withheld = 0;
  /** Requests received on this connection whose credit has not gone back: the drain of a removed gateway waits for 0. */
  #held = 0;
  #idleWaiters: Array<() => void> = [];
  readonly #report: (() => Promise<Buffer>) | undefined;
  #reporter: NodeJS.Timeout | undefined;
  readonly #socketOptions: CurveSocketOptions;
  readonly #log: Logger;
  #events!: FrontEvents;
  #socket: Dealer | undefined;
  #out: SendQueue | undefined;
  /** In front of #out: one BATCH per turn once the gateway offered FEATURES batch. */
  #outbox: LinkOutbox | undefined;
  #owed = 0;
  #creditScheduled = false;
  #registered = false;
  /** Made with the clock at 0: only checked once registered, which the first message from the gateway sets. */
  readonly #liveness: Liveness;
  #losses = 0;
  #ticker: NodeJS.Timeout | undefined;
  #reconnect: NodeJS.Timeout | undefined;
  #leaving = false;
  #closing = false;
  #warned = false;

  constructor(options: LinkFrontOptions) {
    const { endpoint, credit, threads, name, heartbeatMs = LIVENESS_DEFAULTS.heartbeatMs, liveness = LIVENESS_DEFAULTS.liveness } = options;
    this.#opts = { endpoint, credit, threads, name, heartbeatMs, liveness };
    this.#origin = options.origin;
    this.#target = credit;
    this.#liveness = new Liveness({ heartbeatMs, liveness }, 0);
    this.#socketOptions = clientSocketOptions(options.curve);
    this.#log = options.log;
    this.#report = options.report;
  }

  notReady(): string | undefined {
    return this.#registered ? undefined : `not registered with the gateway at ${this.#opts.endpoint}`;
  }

  #sendReport(): void {
    const report = this.#report;
    if (!report || !this.#registered || this.#leaving) return;
    report().then(
      (bytes) => {
        if (this.#registered) this.#write(encodeLink({ command: 'METRICS', report: bytes }));
      },
      (err: unknown) => this.#log.warn({ err }, 'metrics report failed'),
    );
  }

  get describe(): Record<string, unknown> {
    return { connect: this.#opts.endpoint, credit: this.#target };
  }

  get endpoint(): string {
    return this.#opts.endpoint;
  }

  /** Requests this gateway sent that are not answered or dropped yet. */
  get held(): number {
    return this.#held;
  }

  /** Resolves once nothing is held (at once if nothing is), or after `ms`. */
  whenIdle(ms: number): Promise<boolean> {
    if (this.#held === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.#idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** The credit this gateway should have from now on (at most the announced one until the next READY, which announces it). */
  setShare(credit: number): void {
    this.#target = credit;
    if (!this.#registered) return;
    const keep = Math.max(0, this.#announced - credit);
    if (this.#withheld > keep) {
      const release = this.#withheld - keep;
      this.#withheld = keep;
      this.#write(encodeLink({ command: 'CREDIT', credit: release }));
    }
  }

  /** Of `credit` credits ending here, those the gateway gets back now (the rest is withheld for a lowered share). */
  #pass(credit: number): number {
    this.#held -= credit;
    if (this.#held <= 0) {
      this.#held = 0;
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
    const keep = Math.min(credit, Math.max(0, this.#announced - this.#target - this.#withheld));
    this.#withheld += keep;
    return credit - keep;
  }

  /** True once the gateway has answered READY (and until it is lost). */
  /** Which of the service's gateways this link is (multi-link-front.ts); undefined alone. */
  get origin(): number | undefined {
    return this.#origin;
  }

  get registered(): boolean {
    return this.#registered;
  }

  connect(events: FrontEvents): void {
    this.#events = events;
    this.#open();
    this.#ticker = setInterval(() => this.#tick(), this.#opts.heartbeatMs);
    if (this.#report) {
      this.#reporter = setInterval(() => this.#sendReport(), REPORT_EVERY_MS);
      this.#reporter.unref();
    }
  }

  #open(): void {
    const socket = new Dealer({ linger: 1000, sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000, ...this.#socketOptions });
    // Listeners before connect(): the monitor starts at the first `events` access and
    // reports nothing that happened before it, while libzmq's I/O thread may connect
    // and fail a CURVE handshake on loopback at once. Attached after connect(), 3 of 40
    // starts heard no event at all, and no retry came within 600 ms (measured).
    socket.events.on('disconnect', () => {
      if (socket === this.#socket) this.#lost('connection closed');
    });
    // A CURVE mismatch fails the ZMTP handshake; libzmq may retry it without a
    // disconnect event, so a failed handshake counts as a loss by itself.
    const handshakeFailed = (event: { error: Error }): void => {
      if (socket === this.#socket) this.#lost(`handshake failed: ${event.error.message}`);
    };
    socket.events.on('handshake:error:protocol', handshakeFailed);
    socket.events.on('handshake:error:auth', handshakeFailed);
    socket.connect(this.#opts.endpoint);
    this.#socket = socket;
    const out = new SendQueue(socket, { maxQueued: 100_000, onError: (err) => this.#log.error({ err }, 'link send failed') });
    this.#out = out;
    this.#outbox = new LinkOutbox((frame) => out.send(frame));
    this.#registered = false;
    this.#owed = 0;
    this.#announced = this.#target;
    this.#withheld = 0;
    this.#held = 0;
    // A service that is already leaving must not ask for work from a new gateway.
    if (!this.#leaving) this.#write(encodeLink({ command: 'READY', credit: this.#announced, threads: this.#opts.threads, name: this.#opts.name }));
    void this.#read(socket);
  }

  async #read(socket: Dealer): Promise<void> {
    try {
      for await (const frames of socket) {
        if (socket !== this.#socket) return;
        this.#onFrames(frames);
      }
    } catch (err) {
      if (socket === this.#socket && !this.#closing) this.#log.error({ err }, 'link receive loop failed');
    }
  }

  /** A message's frames, or one message of a BATCH; undefined when it breaks the link's rules (the first one logged). */
  #decode(frames: Buffer[] | Buffer): LinkMessage | undefined {
    try {
      return Array.isArray(frames) ? decodeLink(frames) : decodeBatchItem(frames);
    } catch (err) {
      if (!this.#warned) {
        this.#warned = true;
        this.#log.warn({ err: (err as Error).message }, 'malformed link message dropped (further ones are not logged)');
      }
      return undefined;
    }
  }

  #onFrames(frames: Buffer[]): void {
    const message = this.#decode(frames);
    if (message === undefined) return;
    this.#liveness.heard();
    if (message.command === 'BATCH') {
      const socket = this.#socket;
      for (const frame of message.frames) {
        const item = this.#decode(frame);
        if (item === undefined) continue;
        // A BYE in the batch started over on a new socket: what follows it was for the old one.
        if (this.#socket !== socket) return;
        this.#onMessage(item);
      }
      return;
    }
    this.#onMessage(message);
  }

  #onMessage(message: LinkMessage): void {
    if (!this.#registered && message.command !== 'BYE') {
      this.#registered = true;
      this.#losses = 0;
      this.#log.info({ connect: this.#opts.endpoint, credit: this.#announced }, 'connected to the gateway');
      // The gateway shows this service's numbers from its first seconds on.
      setImmediate(() => this.#sendReport());
    }
    switch (message.command) {
      case 'REQUEST':
        this.#held++;
        this.#events.onMessage(message.message, true, this.#origin);
        return;
      // FRAME: a later message of a WebSocket connection this service holds, uncharged (m2gate-link.md).
      case 'DISCONNECT':
      case 'NOTICE':
      case 'FRAME':
        this.#events.onMessage(message.message, false, this.#origin);
        return;
      case 'HEARTBEAT':
        return;
      case 'FEATURES':
        // The gateway reads BATCH: say so back, then batch what goes to it.
        if (message.features.includes(FEATURE_BATCH) && !this.#outbox!.batching) {
          this.#write(FEATURES);
          this.#outbox!.enableBatches();
        }
        return;
      case 'BYE':
        this.#lost('the gateway said BYE');
        return;
      default:
        this.#log.warn({ command: message.command }, 'a service-only command from the gateway dropped');
    }
  }

  #write(frames: Buffer[]): void {
    this.#liveness.sent();
    this.#outbox?.push(frames[0]!);
  }

  send(message: Buffer, credit: number): void {
    const back = this.#pass(credit + this.#owed);
    this.#owed = 0;
    this.#write(encodeLink({ command: 'REPLY', credit: back, message }));
  }

  giveBack(credit: number): void {
    this.#owed += credit;
    if (this.#creditScheduled) return;
    this.#creditScheduled = true;
    // Several requests often end in one turn (a client with pipelined requests
    // goes away): one CREDIT message for all of them.
    setImmediate(() => {
      this.#creditScheduled = false;
      if (this.#owed === 0) return;
      const credit = this.#pass(this.#owed);
      this.#owed = 0;
      if (credit > 0) this.#write(encodeLink({ command: 'CREDIT', credit }));
    });
  }

  #tick(): void {
    if (!this.#registered || this.#socket === undefined) return;
    const verdict = this.#liveness.check();
    if (verdict === Verdict.DEAD) this.#lost('heartbeats missed');
    else if (verdict === Verdict.BEAT) this.#write(HEARTBEAT);
  }

  /** The gateway no longer knows this service: drop everything, start over on a new socket. */
  #lost(why: string): void {
    if (this.#closing || this.#socket === undefined) return;
    const old = this.#socket;
    const wasRegistered = this.#registered;
    this.#socket = undefined;
    this.#out = undefined;
    this.#outbox?.drop();
    this.#outbox = undefined;
    this.#registered = false;
    old.linger = 0;
    old.close();
    this.#events.onLost(this.#origin);
    this.#owed = 0;
    this.#held = 0;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
    const delay = Math.min(FIRST_BACKOFF_MS * 2 ** this.#losses, MAX_BACKOFF_MS);
    this.#losses++;
    if (why === 'the gateway said BYE') {
      // A gateway that stops (or restarts) says BYE on purpose: expected, not a fault.
      this.#log.info({ why, reconnectInMs: delay, connect: this.#opts.endpoint }, 'lost the gateway');
    } else if (!wasRegistered) {
      // Never registered: the usual cause is a CURVE mismatch, which libzmq reports only as a closed connection.
      const hint =
        this.#socketOptions.curveServerKey === undefined
          ? 'the gateway closed the connection before this service registered: if it uses CURVE, give this service --curve-secret and --curve-server-key'
          : "the gateway closed the connection before this service registered: check that --curve-server-key is the gateway's public key and that this service's public key is on its --curve-allow list";
      this.#log.warn({ why, reconnectInMs: delay, connect: this.#opts.endpoint, hint }, 'lost the gateway');
    } else this.#log.warn({ why, reconnectInMs: delay, connect: this.#opts.endpoint }, 'lost the gateway');
    this.#reconnect = setTimeout(() => this.#open(), delay);
  }

  stopTaking(): Promise<void> {
    this.#leaving = true;
    if (!this.#registered) return Promise.resolve();
    this.#write(BYE);
    return new Promise((resolve) => setTimeout(resolve, LEAVE_GRACE_MS));
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#ticker);
    clearInterval(this.#reporter);
    clearTimeout(this.#reconnect);
    const socket = this.#socket;
    if (!socket) return;
    const owed = this.#owed > 0 ? this.#pass(this.#owed) : 0;
    if (owed > 0) this.#write(encodeLink({ command: 'CREDIT', credit: owed }));
    this.#outbox?.flush();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#out!.flush(), new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)))]);
    clearTimeout(timer);
    socket.close();
  }
}
