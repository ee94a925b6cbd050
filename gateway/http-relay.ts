/**
 * Relays a handler's reply messages to a node:http response. The handler's
 * bytes are parsed as HTTP (head, then Content-Length, chunked, or until the
 * close message) and re-emitted through node:http, which keeps keep-alive,
 * HEAD and pipelining correct and turns a malformed reply into a 502 instead
 * of raw bytes on the client's socket (DESIGN.md, deliberate differences).
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import { ResponseParser, type ParsedHead } from '../protocol/http-response.js';
import type { ReplySink } from './handler-pool.js';

// node:http frames the body itself; the handler's own framing and
// connection-management headers must not be copied (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

export interface RelayEvents {
  /** The response is complete, failed, or abandoned: release the connection id. */
  onDone(outcome: 'complete' | 'bad-reply' | 'closed'): void;
  /** A reply message arrived for this response. */
  onActivity?(): void;
}

export class HttpRelay implements ReplySink {
  readonly #res: ServerResponse;
  readonly #parser: ResponseParser;
  readonly #events: RelayEvents;
  readonly #head: boolean;
  #finished = false;

  constructor(res: ServerResponse, head: boolean, events: RelayEvents) {
    this.#res = res;
    this.#events = events;
    this.#head = head;
    this.#parser = new ResponseParser(
      {
        onHead: (h) => this.#writeHead(h),
        onBody: (chunk) => {
          res.write(chunk);
        },
        onEnd: () => this.#finish('complete'),
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

  #writeHead(head: ParsedHead): void {
    const headers: string[] = [];
    for (const [name, value] of head.headers) {
      if (!HOP_BY_HOP.has(name.toLowerCase())) headers.push(name, value);
    }
    if (!head.keepAlive) headers.push('Connection', 'close');
    this.#res.writeHead(head.status, head.reason, headers);
  }

  onData(body: Buffer): void {
    if (this.#finished) return;
    this.#events.onActivity?.();
    try {
      this.#parser.push(body);
    } catch {
      // A HEAD response is complete at its head, but many handlers send the body anyway
      // (Mongrel2 writes it raw, §4.3): drop it, as node:http drops a HEAD body, instead of
      // cutting a connection whose response went out whole.
      if (this.#head && this.#finished) return;
      this.#fail();
    }
  }

  onClose(): void {
    if (this.#finished) return;
    try {
      this.#parser.close();
    } catch {
      this.#fail();
      return;
    }
    // The response ended with the close message: the connection goes too (§4.3).
    this.#res.once('finish', () => this.#res.socket?.end());
    if (!this.#finished) this.#finish('complete');
  }

  /** A reply that is not valid HTTP: 502 if nothing was sent yet, else cut the connection. */
  #fail(): void {
    this.#finished = true;
    const res = this.#res;
    if (!res.headersSent) {
      // The reason is explicit: a writeHead that threw on the handler's head (a control byte in
      // its reason or a value) has already set statusMessage, which writeHead would reuse.
      res.writeHead(502, 'Bad Gateway', { 'Content-Type': 'text/plain', Connection: 'close', 'Content-Length': 11 });
      res.end('Bad Gateway');
    } else {
      res.destroy();
    }
    this.#events.onDone('bad-reply');
  }

  #finish(outcome: 'complete'): void {
    this.#finished = true;
    this.#res.end();
    this.#events.onDone(outcome);
  }

  /** The gateway gives up (timeout, shutdown): 504/503 if possible, else cut. */
  abort(status: number, message: string, extra: Record<string, string> = {}): void {
    if (this.#finished) return;
    this.#finished = true;
    const res = this.#res;
    if (!res.headersSent) {
      const body = Buffer.from(message);
      res.writeHead(status, STATUS_CODES[status], { 'Content-Type': 'text/plain', 'Content-Length': body.length, ...extra });
      res.end(body);
    } else {
      res.destroy();
    }
    this.#events.onDone('closed');
  }
}
