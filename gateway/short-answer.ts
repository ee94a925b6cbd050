/**
 * The gateway's own short answers: the 4xx/5xx (and Dir's 301) that m2gate writes itself
 * rather than relaying from a handler, Dir file or upstream. One writer, so every such answer
 * has the same bytes: `text/plain; charset=utf-8`, an exact byte Content-Length, the standard
 * reason phrase, no body for HEAD, and Retry-After from one option.
 *
 * Mongrel2 1.12.2 answers these from fixed strings (§9) that differ in framing from place to
 * place; ours differ only in status and text.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';

/** Retry-After seconds on the gateway's 503s unless GatewayOptions.retryAfterSeconds says otherwise. */
export const RETRY_AFTER_DEFAULT_S = 1;

export interface ShortAnswerOptions {
  /** Adds `Retry-After` (RFC 9110 §10.2.3), in seconds. Omitted when undefined. */
  retryAfterS?: number | undefined;
  /**
   * Adds `Connection: close`: the request may still carry a body nobody will read, or its
   * framing is in doubt, so the connection must not serve another request.
   */
  close?: boolean;
  /** Headers the status needs besides (`Allow` for 405, `Location` for 301). */
  headers?: Record<string, string>;
}

function headerBlock(text: Buffer, opts: ShortAnswerOptions): Record<string, string> {
  const headers: Record<string, string> = { ...opts.headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(text.length) };
  if (opts.retryAfterS !== undefined) headers['Retry-After'] = String(opts.retryAfterS);
  if (opts.close === true) headers.Connection = 'close';
  return headers;
}

/**
 * Ends `res` with `status` and `text` as its body. When the head already went (a relayed
 * response failed midway) the status can no longer change, so the response is destroyed:
 * cutting the connection is the only honest signal left. Never throws for a live response.
 */
export function sendShortAnswer(res: ServerResponse, status: number, text: string, opts: ShortAnswerOptions = {}): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = Buffer.from(text, 'utf8');
  // The reason is explicit: a writeHead that threw on a handler's head (a control byte in its
  // reason) has already set statusMessage, which writeHead would otherwise reuse.
  res.writeHead(status, STATUS_CODES[status] ?? '', headerBlock(body, opts));
  // RFC 9110 §9.3.2: HEAD gets the GET answer's header fields, Content-Length included, without the body.
  if (res.req.method === 'HEAD') res.end();
  else res.end(body);
}

/** How much of a refused body {@link refuseBody} reads, and for how long, before the close. */
export interface LingerLimits {
  /** Body bytes read after the answer; one more chunk ends the wait. */
  maxBytes: number;
  /** Time from the answer to the close at the latest, ms. */
  maxMs: number;
}

/** 8 MiB or 5 s (nginx's `lingering_timeout` is 5 s too), whichever comes first. */
export const LINGER_DEFAULTS: Readonly<LingerLimits> = { maxBytes: 8 * 1024 * 1024, maxMs: 5_000 };

/**
 * Ends `res` with `status` and `text` and `Connection: close` for a request whose body the
 * gateway will not take (413), reading and discarding the rest of that body before the close:
 * the lingering close of RFC 9112 §9.6. Closing while the body still arrives makes the kernel
 * answer the unread bytes with RST, and a client still writing then fails with EPIPE or
 * ECONNRESET, often before it has read the answer (test/body-limit.test.ts: 2 MiB to a 1 MiB
 * limit, 2-6 of 60 tries; 4 MiB, 58-60 of 60).
 *
 * The answer goes out at once; only `res.end()` waits, so node closes the connection once the
 * body has ended, the client has gone, `limits.maxBytes` more have arrived or `limits.maxMs`
 * has passed, whichever is first. The last two may still end in a reset: that is the bound.
 * A request whose body is complete, or a response already under way, gets sendShortAnswer.
 */
export function refuseBody(res: ServerResponse, status: number, text: string, limits: LingerLimits = LINGER_DEFAULTS): void {
  const req = res.req;
  if (req.complete || res.headersSent || res.destroyed) return sendShortAnswer(res, status, text, { close: true });
  const body = Buffer.from(text, 'utf8');
  res.writeHead(status, STATUS_CODES[status] ?? '', headerBlock(body, { close: true }));
  if (req.method === 'HEAD') res.flushHeaders();
  else res.write(body);
  let read = 0;
  const done = (): void => {
    clearTimeout(timer);
    req.off('data', count);
    req.off('end', done);
    res.off('close', done);
    if (!res.writableEnded && !res.destroyed) res.end();
  };
  const count = (chunk: Buffer): void => {
    read += chunk.length;
    if (read > limits.maxBytes) done();
  };
  const timer = setTimeout(done, limits.maxMs);
  req.on('data', count);
  req.once('end', done);
  // The client gone, or close() cutting every connection.
  res.once('close', done);
  req.resume();
}

/**
 * The same answer as raw HTTP/1.1 bytes, for a socket that has no ServerResponse (node's
 * clientError, CONNECT). Always `Connection: close`: after a request node could not parse,
 * nothing on the connection can be trusted.
 */
export function shortAnswerBytes(status: number, text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  for (const [name, value] of Object.entries(headerBlock(body, { close: true }))) head += `${name}: ${value}\r\n`;
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), body]);
}
