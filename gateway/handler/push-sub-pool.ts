/**
 * A Handler served the Mongrel2 way (transport='mongrel2', the default): what
 * Mongrel2 does for one `Handler(...)` of the config. Binds PUSH on send_spec
 * and SUB on recv_spec (subscribed by recv_ident, as Mongrel2 subscribes:
 * §4.2), sends each request as a Mongrel2 message, and routes each reply to
 * the sink registered for its connection id.
 *
 * Deliberate differences from Mongrel2 1.12.2 (DESIGN.md): connection ids are
 * never reused; a reply whose sender is not this handler's send_ident is
 * ignored; with no handler connected the caller learns it at once (503) instead
 * of the request waiting two minutes (§5.2).
 */
import { Push, Subscriber } from 'zeromq';
import type { Logger } from 'pino';
import { encodeCredits } from '../../protocol/download-credits.js';
import { encodeDisconnect, encodeRequest, type HeaderEncoding, type RequestFields } from '../../protocol/m2-request.js';
import { SendQueue } from '../../zmq/send-queue.js';
import type { ConfigHandler } from '../../protocol/mongrel2-conf.js';
import { ReplyDispatch, type HandlerPoolStats, type ReplySink } from './reply-dispatch.js';
import { serverSocketOptions, type CurveConfig } from '../../zmq/curve-config.js';
import type { HandlerTarget, PoolView } from './handler-target.js';

export class PushSubPool implements HandlerTarget {
  readonly config: ConfigHandler;
  readonly #log: Logger;
  readonly #push: Push;
  readonly #sub: Subscriber;
  readonly #out: SendQueue;
  readonly #replies: ReplyDispatch;
  #peers = 0;
  #peerWaiters: Array<() => void> = [];
  #reading: Promise<void> | undefined;
  #closed = false;

  /** With `curve`, both sockets are CURVE servers: only allow-listed services may connect. */
  constructor(config: ConfigHandler, log: Logger, curve?: CurveConfig) {
    this.config = config;
    this.#push = new Push({ sendHighWaterMark: 10_000, ...serverSocketOptions(curve) });
    this.#sub = new Subscriber(serverSocketOptions(curve));
    this.#log = log.child({ handler: config.sendIdent });
    this.#replies = new ReplyDispatch(config.sendIdent, this.#log);
    this.#out = new SendQueue(this.#push, { onError: (err) => this.#log.error({ err }, 'push failed') });
    // A bound PUSH with no peer leaves send() pending forever; count peers so
    // that callers can answer 503 at once.
    this.#push.events.on('accept', () => {
      this.#peers++;
      this.#log.info({ peers: this.#peers }, 'handler connected');
      for (const resolve of this.#peerWaiters.splice(0)) resolve();
    });
    this.#push.events.on('disconnect', () => {
      this.#peers = Math.max(0, this.#peers - 1);
      this.#log.info({ peers: this.#peers }, 'handler disconnected');
    });
  }

  get stats(): HandlerPoolStats {
    return this.#replies.stats;
  }

  get encoding(): HeaderEncoding {
    return this.config.protocol;
  }

  /** True while at least one handler process is connected to send_spec. */
  get hasPeers(): boolean {
    return this.#peers > 0;
  }

  /** Resolves once a handler process is connected to send_spec (at once if one is). */
  whenPeer(): Promise<void> {
    if (this.hasPeers) return Promise.resolve();
    return new Promise((resolve) => this.#peerWaiters.push(resolve));
  }

  get pending(): number {
    return this.#replies.size;
  }

  /** PUSH/SUB cannot tell its peers apart: only their number and what is in flight. */
  view(): PoolView {
    return { connected: this.#peers, services: [], threads: 0, creditHeld: 0, creditFree: 0, queueDepth: 0, retries: 0, queueRejected: 0, serviceLost: 0, reports: [] };
  }

  async bind(): Promise<void> {
    await this.#push.bind(this.config.sendSpec);
    await this.#sub.bind(this.config.recvSpec);
    this.#sub.subscribe(this.config.recvIdent);
    this.#reading = this.#readLoop();
  }

  /** Returns false when no handler is connected or the send queue is full. */
  send(fields: Omit<RequestFields, 'sender'>, sink: ReplySink): boolean {
    if (!this.hasPeers || this.#closed) return false;
    const message = encodeRequest({ ...fields, sender: this.config.sendIdent }, this.config.protocol);
    if (!this.#out.send(message)) return false;
    this.#replies.register(fields.connId, sink);
    this.stats.sent++;
    return true;
  }

  release(connId: number): void {
    this.#replies.release(connId);
  }

  /** PUSH/SUB has nothing to pin: the sink stays registered until release(). */
  hold(_connId: number): void {}

  /** Like any message: PUSH round-robins it across the connected handlers, as Mongrel2's does. */
  sendMore(fields: Omit<RequestFields, 'sender'>, sink: ReplySink): boolean {
    return this.send(fields, sink);
  }

  /** The client went away or timed out: tell the handler, as Mongrel2 does (§3.6). */
  disconnect(connId: number): void {
    this.#replies.forget(connId);
    this.#notifyGone(connId);
  }

  #notifyGone(connId: number): void {
    if (this.hasPeers && !this.#closed) this.#out.send(encodeDisconnect(this.config.sendIdent, connId, this.config.protocol));
  }

  /** A reply to an id that is gone is told so on the PUSH socket, as Mongrel2 does (§4.6):
   * like Mongrel2's, the notice may reach any of the handler processes. */
  readonly #replyFrom = { onUnknown: (connId: number) => this.#notifyGone(connId) };

  credits(connId: number, bytes: number): void {
    if (this.hasPeers && !this.#closed) this.#out.send(encodeCredits(this.config.sendIdent, connId, bytes, this.config.protocol));
  }

  async #readLoop(): Promise<void> {
    try {
      for await (const [frame] of this.#sub) if (frame) this.#replies.deliver(frame, this.#replyFrom);
    } catch (err) {
      if (!this.#closed) this.#log.error({ err }, 'reply loop failed');
    }
  }

  /**
   * Flushes what is queued for the handlers (disconnect notices, mostly), for
   * at most `flushTimeoutMs`: a PUSH with no peer never completes a send, so
   * without the bound a pool whose handlers are gone would never close.
   */
  async close(flushTimeoutMs = 1000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.hasPeers) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#out.flush(), new Promise<void>((resolve) => (timer = setTimeout(resolve, flushTimeoutMs)))]);
      clearTimeout(timer);
    }
    // Closing the socket fails any send still pending, which ends the pump.
    this.#push.close();
    this.#sub.close();
    await this.#reading;
  }
}
