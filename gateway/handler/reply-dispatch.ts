/**
 * What every Handler target does with a reply message, whatever carried it
 * (PUSH/SUB or the m2gate link): check it, then hand its body to the sink of
 * each connection id it names (§4).
 */
import type { Logger } from 'pino';
import { decodeControl, isCloseReply, parseReply } from '../../protocol/m2-reply.js';

/** Where the reply messages for one connection id go. */
export interface ReplySink {
  /** The body of one reply message addressed to this id (a view: consume it now or copy). */
  onData(body: Buffer): void;
  /** The empty "close" reply (§4.3). The sink is unregistered first. */
  onClose(): void;
  /**
   * The target gives up on this request (its service died, the link queue
   * timed out): answer `status` if nothing was sent yet, else cut the response.
   * The sink is unregistered first. The sink adds what the status needs (a 503's
   * Retry-After comes from the gateway's one option, not from the target).
   */
  onFail(status: 502 | 503, message: string): void;
}

export interface HandlerPoolStats {
  sent: number;
  replies: number;
  unknownIds: number;
  foreignSender: number;
  malformedReplies: number;
  controlReplies: number;
}

const RECENT_IDS = 4096;

/** What a Handler target knows about the peer a reply came from. */
export interface ReplyFrom {
  /** Whether that peer may answer the id (the link's rule; PUSH/SUB cannot tell peers apart). */
  owns?: (id: number) => boolean;
  /** Each id that got data or a close. */
  onReplied?: (id: number) => void;
  /** Each id the reply named that has no response waiting for it: the target sends that peer
   * Mongrel2's disconnect notice for it (§4.6), once per id per reply message. */
  onUnknown?: (id: number) => void;
}

let lastConnId = 0;

/** Connection ids are unique for the life of the process and never reused. */
export function nextConnId(): number {
  return ++lastConnId;
}

export class ReplyDispatch {
  readonly stats: HandlerPoolStats = { sent: 0, replies: 0, unknownIds: 0, foreignSender: 0, malformedReplies: 0, controlReplies: 0 };
  readonly #sendIdent: string;
  readonly #log: Logger;
  readonly #sinks = new Map<number, ReplySink>();
  readonly #finished = new Set<number>();

  constructor(sendIdent: string, log: Logger) {
    this.#sendIdent = sendIdent;
    this.#log = log;
  }

  get size(): number {
    return this.#sinks.size;
  }

  register(connId: number, sink: ReplySink): void {
    this.#sinks.set(connId, sink);
  }

  sink(connId: number): ReplySink | undefined {
    return this.#sinks.get(connId);
  }

  /** The response is complete: a close message may still follow and is expected. */
  release(connId: number): boolean {
    if (!this.#sinks.delete(connId)) return false;
    // A handler may follow a complete response with the close message (the m2gate
    // service does after HTTP/1.0 and `Connection: close`, as Mongrel2 handlers do):
    // remember recent ids so that close is expected, not counted as unknown.
    this.#finished.add(connId);
    if (this.#finished.size > RECENT_IDS) this.#finished.delete(this.#finished.values().next().value!);
    return true;
  }

  /** Stops routing replies for `connId` without expecting anything more. */
  forget(connId: number): boolean {
    return this.#sinks.delete(connId);
  }

  /** Unregisters the sink, then tells it the target gave up. */
  fail(connId: number, status: 502 | 503, message: string): void {
    const sink = this.#sinks.get(connId);
    if (!sink) return;
    this.#sinks.delete(connId);
    try {
      sink.onFail(status, message);
    } catch (err) {
      this.#log.error({ err, connId }, 'reply sink failed');
    }
  }

  /** Delivers one reply message, sent by the peer `from` describes. */
  deliver(frame: Buffer, from: ReplyFrom = {}): void {
    let reply;
    try {
      reply = parseReply(frame);
    } catch (err) {
      this.stats.malformedReplies++;
      this.#log.warn({ err: (err as Error).message, bytes: frame.length }, 'malformed reply dropped');
      return;
    }
    if (reply.sender !== this.#sendIdent) {
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
    // Mongrel2 answers a reply to an id it does not have with a disconnect notice, except a
    // ctl cancel, which gets nothing (§4.6, §4.7).
    const onUnknown = reply.extended ? undefined : from.onUnknown;
    this.stats.replies++;
    for (const id of reply.ids) {
      const sink = this.#sinks.get(id);
      if (sink === undefined || (from.owns !== undefined && !from.owns(id))) {
        // A close right after a complete response is the expected end: that id is not unknown.
        if (!(close && sink === undefined && this.#finished.delete(id))) {
          this.stats.unknownIds++;
          onUnknown?.(id);
        }
        continue;
      }
      from.onReplied?.(id);
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
}
