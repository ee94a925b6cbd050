/**
 * Brubeck's service call, done with Mongrel2 messages: a request goes to the
 * handler pool that serves `path` in the gateway's own route table, and the
 * correlated reply comes back parsed. Used by app routes through `ctx.call`
 * (synchronous pattern) and `ctx.send` (asynchronous pattern).
 */
import { ERROR_CODES, M2gateError } from '../../protocol/errors.js';
import { ResponseParser } from '../../protocol/http-response.js';
import type { HeaderMap } from '../../protocol/m2-request.js';
import { nextConnId, type ReplySink } from './reply-dispatch.js';
import type { HandlerTarget } from './handler-target.js';

export interface CallInit {
  /** Defaults to GET, or POST when a body is given. */
  method?: string;
  headers?: Record<string, string | readonly string[]>;
  body?: string | Uint8Array;
  /** Deadline in ms. Defaults to the gateway's handler timeout. */
  timeoutMs?: number;
  /** Aborts the call (and the service's task, through a disconnect notice). */
  signal?: AbortSignal;
  /** `brubeck://` calls only: the request's `arguments` dict (merged over the query's keys). */
  arguments?: Record<string, unknown>;
}

export interface CallReply {
  status: number;
  reason: string;
  /** Lower-cased names; repeated headers are joined with ", " except set-cookie (an array). */
  headers: Record<string, string | string[]>;
  body: Buffer;
  text(): string;
  json(): unknown;
}

export interface CallTarget {
  pool: HandlerTarget;
  /** The route key that matched: the PATTERN header. */
  pattern: string;
}

function replyOf(status: number, reason: string, raw: Array<[string, string]>, body: Buffer): CallReply {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of raw) {
    const key = name.toLowerCase();
    if (key === '__proto__' || key === 'constructor') continue;
    const prev = headers[key];
    if (key === 'set-cookie') headers[key] = prev === undefined ? [value] : [...(prev as string[]), value];
    else headers[key] = prev === undefined ? value : `${prev as string}, ${value}`;
  }
  return {
    status,
    reason,
    headers,
    body,
    text: () => body.toString('utf8'),
    json: () => JSON.parse(body.toString('utf8')) as unknown,
  };
}

/** Collects one reply for a call; settles exactly once. */
class CallSink implements ReplySink {
  readonly #parser: ResponseParser;
  readonly #chunks: Buffer[] = [];
  #status = 0;
  #reason = '';
  #headers: Array<[string, string]> = [];
  settle: (err: M2gateError | null, reply?: CallReply) => void;

  constructor(head: boolean, settle: (err: M2gateError | null, reply?: CallReply) => void) {
    this.settle = settle;
    this.#parser = new ResponseParser(
      {
        onHead: (h) => {
          this.#status = h.status;
          this.#reason = h.reason;
          this.#headers = h.headers;
        },
        // Body views alias the reply frame only until this returns: copy.
        onBody: (chunk) => this.#chunks.push(Buffer.from(chunk)),
        onEnd: () => this.settle(null, replyOf(this.#status, this.#reason, this.#headers, Buffer.concat(this.#chunks))),
      },
      { expectNoBody: head },
    );
  }

  onData(body: Buffer): void {
    try {
      this.#parser.push(body);
    } catch (err) {
      this.settle(new M2gateError(ERROR_CODES.BAD_REPLY, `the handler's reply is not valid HTTP: ${(err as Error).message}`, { cause: err }));
    }
  }

  onClose(): void {
    try {
      this.#parser.close();
    } catch (err) {
      this.settle(new M2gateError(ERROR_CODES.BAD_REPLY, `the handler closed before a complete reply: ${(err as Error).message}`, { cause: err }));
    }
  }

  onFail(status: 502 | 503, message: string): void {
    this.settle(
      status === 503
        ? new M2gateError(ERROR_CODES.NO_HANDLER, `no service could take the call in time: ${message}`)
        : new M2gateError(ERROR_CODES.SERVICE_LOST, `the service died before answering: ${message}`),
    );
  }
}

/**
 * Sends one request to `target.pool` and resolves with its reply.
 *
 * @throws M2gateError M2G_ERR_NO_HANDLER (503), M2G_ERR_CALL_TIMEOUT (504),
 *   M2G_ERR_CALL_ABORTED, M2G_ERR_BAD_REPLY (502), M2G_ERR_SERVICE_LOST (502).
 */
export function serviceCall(target: CallTarget, url: string, init: CallInit, defaultTimeoutMs: number): Promise<CallReply> {
  const { pool, pattern } = target;
  return new Promise<CallReply>((resolve, reject) => {
    const signal = init.signal;
    if (signal?.aborted) {
      reject(new M2gateError(ERROR_CODES.CALL_ABORTED, `call to ${url} aborted before it was sent`));
      return;
    }
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const body = init.body === undefined ? Buffer.alloc(0) : typeof init.body === 'string' ? Buffer.from(init.body) : init.body;
    const method = init.method ?? (init.body === undefined ? 'GET' : 'POST');
    const connId = nextConnId();
    // The same keys Mongrel2 puts in a request (§3.2), in its tnetstring order.
    const headers: HeaderMap = { REMOTE_ADDR: '127.0.0.1', METHOD: method, URL_SCHEME: 'http', PATTERN: pattern };
    if (q >= 0) headers.QUERY = url.slice(q + 1);
    headers.URI = url;
    headers.VERSION = 'HTTP/1.1';
    headers.PATH = path;
    for (const [name, value] of Object.entries(init.headers ?? {})) {
      const key = name.toLowerCase();
      if (key === '__proto__' || key === 'constructor' || key.toUpperCase() === key) continue;
      headers[key] = typeof value === 'string' ? value : [...value];
    }
    if (body.length > 0 && headers['content-length'] === undefined) headers['content-length'] = String(body.length);

    let done = false;
    const timeoutMs = init.timeoutMs ?? defaultTimeoutMs;
    const timer = setTimeout(() => {
      finish(new M2gateError(ERROR_CODES.CALL_TIMEOUT, `no reply from ${url} within ${timeoutMs} ms`), undefined, true);
    }, timeoutMs);
    const onAbort = (): void => {
      finish(new M2gateError(ERROR_CODES.CALL_ABORTED, `call to ${url} aborted`), undefined, true);
    };
    const finish = (err: M2gateError | null, reply?: CallReply, tellHandler = false): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (tellHandler) pool.disconnect(connId);
      else pool.release(connId);
      if (err) reject(err);
      else resolve(reply!);
    };
    const sink = new CallSink(method === 'HEAD', (err, reply) => finish(err, reply));
    let sent: boolean;
    try {
      sent = pool.send({ connId, path, headers, body }, sink);
    } catch (err) {
      // encodeRequest refuses what cannot travel in a Mongrel2 message (a space in the path, ...).
      done = true;
      clearTimeout(timer);
      reject(new M2gateError(ERROR_CODES.REQUEST, `cannot call ${url}: ${(err as Error).message}`, { cause: err }));
      return;
    }
    if (!sent) {
      done = true;
      clearTimeout(timer);
      reject(new M2gateError(ERROR_CODES.NO_HANDLER, `no handler is connected for ${url}`));
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
