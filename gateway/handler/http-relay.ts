/**
 * Relays a handler's reply messages to a node:http response. The handler's
 * bytes are parsed as HTTP (head, then Content-Length, chunked, or until the
 * close message) and re-emitted through node:http, which keeps keep-alive,
 * HEAD and pipelining correct and turns a malformed reply into a 502 instead
 * of raw bytes on the client's socket (DESIGN.md, deliberate differences).
 */
import type { ServerResponse } from 'node:http';
import { ResponseParser, type ParsedHead } from '../../protocol/http-response.js';
import type { ReplySink } from './reply-dispatch.js';
import { sendShortAnswer } from '../short-answer.js';

// node:http frames the body itself; the handler's own framing and
// connection-management headers must not be copied (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

export interface RelayEvents {
  /** The response is complete, failed, or abandoned: release the connection id. With
   * 'bad-reply', `reason` is what was wrong with the handler's bytes (for the log). */
  onDone(outcome: 'complete' | 'bad-reply' | 'closed', reason?: unknown): void;
  /** A reply message arrived for this response. */
  onActivity?(): void;
  /** A reply message of `bytes` body bytes has been handed to node:http (download credits). */
  onWritten?(bytes: number): void;
}

export class HttpRelay implements ReplySink {
  readonly #res: ServerResponse;
  readonly #parser: ResponseParser;
  readonly #events: RelayEvents;
  readonly #retryAfterS: number;
  #finished = false;
  /** A parsed head not yet given to node:http: written with the first body bytes, the end, or
   * at the end of the reply message that carried it. Until then a malformed rest of the same
   * message can still become a clean 502 instead of a cut connection. */
  #pendingHead: ParsedHead | undefined;

  /** `retryAfterS`: the Retry-After of a 503 when the handler target gives up (GatewayOptions.retryAfterSeconds). */
  constructor(res: ServerResponse, head: boolean, retryAfterS: number, events: RelayEvents) {
    this.#res = res;
    this.#events = events;
    this.#retryAfterS = retryAfterS;
    this.#parser = new ResponseParser(
      {
        onHead: (h) => {
          this.#pendingHead = h;
        },
        onBody: (chunk) => {
          this.#flushHead();
          res.write(chunk);
        },
        onEnd: () => {
          this.#flushHead();
          this.#finish('complete');
        },
      },
      { expectNoBody: head },
    );
  }

  get finished(): boolean {
    return this.#finished;
  }

  get headSent(): boolean {
    return this.#res.headersSent;
  }

  #flushHead(): void {
    const head = this.#pendingHead;
    if (head === undefined) return;
    this.#pendingHead = undefined;
    this.#writeHead(head);
  }

  #writeHead(head: ParsedHead): void {
    const headers: string[] = [];
    for (const [name, value] of head.headers) {
      const lower = name.toLowerCase();
      // A 426 must say which protocol to upgrade to (RFC 9110 §15.5.22): its Upgrade stays.
      if (!HOP_BY_HOP.has(lower) || (lower === 'upgrade' && head.status === 426)) headers.push(name, value);
    }
    if (!head.keepAlive) headers.push('Connection', 'close');
    this.#res.writeHead(head.status, head.reason, headers);
  }

  onData(body: Buffer): void {
    if (this.#finished) return;
    this.#events.onActivity?.();
    try {
      this.#parser.push(body);
      // A head alone in its message is handed to node:http now, so a streamed reply's head
      // reaches the client without waiting for its body.
      this.#flushHead();
      this.#events.onWritten?.(body.length);
    } catch (err) {
      // Bytes after a complete response: a HEAD response is complete at its head but many
      // handlers send the body anyway (Mongrel2 writes it raw, §4.3), and a handler that
      // appends a second response is trying to answer a request it was not given. The
      // response went out whole and node:http frames it, so drop the extra bytes instead of
      // cutting it (its write may not even have left the socket yet).
      if (this.#finished) return;
      this.#fail(err);
    }
  }

  onClose(): void {
    if (this.#finished) return;
    try {
      this.#parser.close();
    } catch (err) {
      this.#fail(err);
      return;
    }
    // The response ended with the close message: the connection goes too (§4.3).
    this.#res.once('finish', () => this.#res.socket?.end());
    if (!this.#finished) this.#finish('complete');
  }

  /** A reply that is not valid HTTP: 502 if nothing was sent yet, else cut the connection. */
  #fail(reason: unknown): void {
    this.#finished = true;
    // Cuts the connection instead when the head already went.
    sendShortAnswer(this.#res, 502, 'Bad Gateway', { close: true });
    this.#events.onDone('bad-reply', reason);
  }

  #finish(outcome: 'complete'): void {
    this.#finished = true;
    this.#res.end();
    this.#events.onDone(outcome);
  }

  /** The handler target gave up (service died, queue timed out). */
  onFail(status: 502 | 503, message: string): void {
    this.abort(status, message);
  }

  /** The gateway gives up (timeout, no handler): 504/503 if nothing was sent yet, else cut. */
  abort(status: 502 | 503 | 504, message: string): void {
    if (this.#finished) return;
    this.#finished = true;
    sendShortAnswer(this.#res, status, message, status === 503 ? { retryAfterS: this.#retryAfterS } : {});
    this.#events.onDone('closed');
  }
}
