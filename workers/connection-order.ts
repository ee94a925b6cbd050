/**
 * Per-connection reply order. Mongrel2 forwards a client's pipelined requests
 * at once, all with the same connection id (§4.4), and HTTP/1.1 wants their
 * responses in request order, so a reply decided early (a 404, a fast route)
 * waits until every earlier request on its connection has been answered.
 * After a reply that closes the connection, later requests on it can never
 * be answered and are discarded.
 */
import type { M2Request } from '../protocol/m2-request.js';

/** What the order needs of a request. */
export interface Ordered {
  /** The connection: sender and connId (connIds are per front). */
  readonly key: string;
  /** Set once the answer is decided; sent when every earlier request on the connection is. */
  readonly reply?: Buffer | undefined;
  /** The connection closes after this reply. */
  readonly close: boolean;
}

/** Where ordered requests go. */
export interface OrderedSink<T> {
  /** The request's turn: send its reply (and the close message when `close`). */
  deliver(item: T): void;
  /** A later request on a connection that closed: it gets no reply. */
  discard(item: T): void;
}

/**
 * Mongrel2 never closes a connection on its own: the handler sends the close
 * message after HTTP/1.0 requests (unless keep-alive) and `Connection: close`.
 */
export function wantsClose(req: M2Request): boolean {
  const conn = req.headers.connection;
  const value = (Array.isArray(conn) ? conn.join(',') : (conn ?? '')).toLowerCase();
  if (value.includes('close')) return true;
  return req.headers.VERSION === 'HTTP/1.0' && !value.includes('keep-alive');
}

export class ConnectionOrder<T extends Ordered> {
  /** Each connection's unanswered requests, oldest first; a connection with none has no entry. */
  readonly #queues = new Map<string, T[]>();
  readonly #sink: OrderedSink<T>;

  constructor(sink: OrderedSink<T>) {
    this.#sink = sink;
  }

  /** Appends a request to its connection's queue. */
  add(item: T): void {
    let queue = this.#queues.get(item.key);
    if (!queue) this.#queues.set(item.key, (queue = []));
    queue.push(item);
  }

  /** Delivers the connection's decided replies, oldest first, up to the first undecided one. */
  flush(key: string): void {
    const queue = this.#queues.get(key);
    if (!queue) return;
    while (queue.length > 0 && queue[0]!.reply !== undefined) {
      const item = queue.shift()!;
      this.#sink.deliver(item);
      if (item.close) {
        // Later pipelined requests on a closed connection can never be answered.
        for (const rest of queue.splice(0)) this.#sink.discard(rest);
      }
    }
    if (queue.length === 0) this.#queues.delete(key);
  }

  /** Removes the connection and returns its unanswered requests (oldest first), for the caller to abandon. */
  take(key: string): T[] | undefined {
    const queue = this.#queues.get(key);
    if (queue) this.#queues.delete(key);
    return queue;
  }

  /** A snapshot of the connections with unanswered requests. */
  keys(): string[] {
    return [...this.#queues.keys()];
  }
}
