/**
 * A Handler target: what Mongrel2 does for one `Handler(...)` of the config.
 * Binds PUSH on send_spec and SUB on recv_spec (subscribed by recv_ident, as
 * Mongrel2 subscribes: §4.2), sends each request as a Mongrel2 message, and
 * routes each reply to the sink registered for its connection id.
 *
 * Deliberate differences from Mongrel2 1.12.2 (DESIGN.md): connection ids are
 * never reused; a reply whose sender is not this handler's send_ident is
 * ignored; with no handler connected the caller learns it at once (503) instead
 * of the request waiting two minutes (§5.2).
 */
import { Push, Subscriber } from 'zeromq';
import type { Logger } from 'pino';
import { encodeDisconnect, encodeRequest, type HeaderEncoding, type RequestFields } from '../protocol/m2-request.js';
import { decodeControl, isCloseReply, parseReply } from '../protocol/m2-reply.js';
import { SendQueue } from '../transport/send-queue.js';
import type { ConfigHandler } from '../protocol/mongrel2-conf.js';

/** Where the reply messages for one connection id go. */
export interface ReplySink {
  /** The body of one reply message addressed to this id (a view: consume it now or copy). */
  onData(body: Buffer): void;
  /** The empty "close" reply (§4.3). The sink is unregistered first. */
  onClose(): void;
}

export interface HandlerPoolStats {
  sent: number;
  replies: number;
  unknownIds: number;
  foreignSender: number;
  malformedReplies: number;
  controlReplies: number;
}

let lastConnId = 0;
const RECENT_IDS = 4096;

/** Connection ids are unique for the life of the process and never reused. */
export function nextConnId(): number {
  return ++lastConnId;
}

export class HandlerPool {
  readonly config: ConfigHandler;
  readonly stats: HandlerPoolStats = { sent: 0, replies: 0, unknownIds: 0, foreignSender: 0, malformedReplies: 0, controlReplies: 0 };
  readonly #log: Logger;
  readonly #push = new Push({ sendHighWaterMark: 10_000 });
  readonly #sub = new Subscriber();
  readonly #out: SendQueue;
  readonly #sinks = new Map<number, ReplySink>();
  readonly #finished = new Set<number>();
  #peers = 0;
  #peerWaiters: Array<() => void> = [];
  #reading: Promise<void> | undefined;
  #closed = false;

  constructor(config: ConfigHandler, log: Logger) {
    this.config = config;
    this.#log = log.child({ handler: config.sendIdent });
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
    return this.#sinks.size;
  }

  async bind(): Promise<void> {
    await this.#push.bind(this.config.sendSpec);
    await this.#sub.bind(this.config.recvSpec);
    this.#sub.subscribe(this.config.recvIdent);
    this.#reading = this.#readLoop();
  }

  /**
   * Sends a request to the handler pool; replies for `connId` go to `sink`
   * until it is released. Returns false when no handler is connected or the
   * send queue is full (the caller answers 503).
   */
  send(fields: Omit<RequestFields, 'sender'>, sink: ReplySink): boolean {
    if (!this.hasPeers || this.#closed) return false;
    const message = encodeRequest({ ...fields, sender: this.config.sendIdent }, this.config.protocol);
    if (!this.#out.send(message)) return false;
    this.#sinks.set(fields.connId, sink);
    this.stats.sent++;
    return true;
  }

  /** Stops routing replies for `connId` (its response is complete). */
  release(connId: number): void {
    if (!this.#sinks.delete(connId)) return;
    // A handler may follow a complete response with the close message (the m2gate
    // service does after HTTP/1.0 and `Connection: close`, as Mongrel2 handlers do):
    // remember recent ids so that close is expected, not counted as unknown.
    this.#finished.add(connId);
    if (this.#finished.size > RECENT_IDS) this.#finished.delete(this.#finished.values().next().value!);
  }

  /** The client went away or timed out: tell the handler, as Mongrel2 does (§3.6). */
  disconnect(connId: number): void {
    this.#sinks.delete(connId);
    if (this.hasPeers && !this.#closed) this.#out.send(encodeDisconnect(this.config.sendIdent, connId, this.config.protocol));
  }

  async #readLoop(): Promise<void> {
    try {
      for await (const [frame] of this.#sub) if (frame) this.#onReply(frame);
    } catch (err) {
      if (!this.#closed) this.#log.error({ err }, 'reply loop failed');
    }
  }

  #onReply(frame: Buffer): void {
    let reply;
    try {
      reply = parseReply(frame);
    } catch (err) {
      this.stats.malformedReplies++;
      this.#log.warn({ err: (err as Error).message, bytes: frame.length }, 'malformed reply dropped');
      return;
    }
    if (reply.sender !== this.config.sendIdent) {
      this.stats.foreignSender++;
      this.#log.warn({ sender: reply.sender, ids: reply.ids.length }, 'reply from a foreign sender ignored');
      return;
    }
    let close = isCloseReply(reply);
    if (reply.extended) {
      // ctl keep-alive and credits (§4.7) have no meaning without Mongrel2's
      // reaper and upload streaming; cancel closes the connection.
      this.stats.controlReplies++;
      let cancel = false;
      try {
        const { name, args } = decodeControl(reply.body);
        cancel = name === 'ctl' && typeof args === 'object' && args !== null && !Array.isArray(args) && !Buffer.isBuffer(args) && 'cancel' in args;
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'malformed control reply dropped');
      }
      if (!cancel) return;
      close = true;
    }
    this.stats.replies++;
    for (const id of reply.ids) {
      const sink = this.#sinks.get(id);
      if (sink === undefined) {
        if (!(close && this.#finished.delete(id))) this.stats.unknownIds++;
        continue;
      }
      // One connection's failure must not end the reply loop that serves all the others.
      try {
        if (close) {
          this.#sinks.delete(id);
          sink.onClose();
        } else {
          sink.onData(reply.body);
        }
      } catch (err) {
        this.#sinks.delete(id);
        this.#log.error({ err, connId: id }, 'reply sink failed');
      }
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
