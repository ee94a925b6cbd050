/**
 * App routes: light I/O work done in the gateway's own event loop, matched
 * before the configuration's routes, with the service routes' pattern syntax
 * and return values. Each handler gets a `ctx` with Brubeck's two service
 * patterns: `ctx.call` (wait for the reply) and `ctx.send` (fire and forget,
 * with an optional response handler).
 *
 * Every route has a deadline (its `timeoutMs`, else the gateway's handler
 * timeout): past it the client gets 504 (M2G_ERR_APP_TIMEOUT) and `req.signal`
 * fires, which aborts the route's ctx.call()s and whatever else listens to it.
 * The per-request cost stays small on this hot path: one shared timer for all
 * deadlines (deadline-sweep.ts), and the AbortController is made only when the
 * handler reads `req.signal` (or calls a service).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { toResponseInit } from '../protocol/route-result.js';
import { compileMethodRoutes as compileRoutes, matchMethodRoute as lookupRoute, parseQuery, type MethodRoute as CompiledRoute } from '../protocol/method-router.js';
import type { CallInit, CallReply } from './handler/index.js';
import { DeadlineSweep } from './deadline-sweep.js';
import { sendContinue } from './expect-continue.js';
import { refuseBody } from './short-answer.js';
import { dispatchNow, readingBody } from './dispatch-order.js';

export interface AppRequest {
  method: string;
  /** The raw request path (percent-escapes kept). */
  path: string;
  params: Record<string, string>;
  query: Record<string, string | string[]>;
  /** node:http's header object (lower-cased names). */
  headers: IncomingMessage['headers'];
  body: Buffer;
  /**
   * Aborted when the client goes away (reason M2G_ERR_CALL_ABORTED) or the
   * route's deadline passes (M2G_ERR_APP_TIMEOUT; the client got 504).
   */
  readonly signal: AbortSignal;
}

/** Brubeck's response handler: called exactly once, with the reply or the error. */
export type OnReply = (err: M2gateError | null, reply?: CallReply) => void;

export interface AppContext {
  /**
   * Synchronous pattern: sends a request to the handler pool serving `path`
   * and resolves with its reply. Aborted (with a disconnect notice to the
   * service) when the outer client goes away.
   *
   * @throws M2gateError M2G_ERR_NO_ROUTE (404), M2G_ERR_NO_HANDLER (503),
   *   M2G_ERR_CALL_TIMEOUT (504), M2G_ERR_CALL_ABORTED, M2G_ERR_BAD_REPLY (502).
   */
  call(path: string, init?: CallInit): Promise<CallReply>;
  /**
   * Asynchronous pattern: dispatches and returns at once. `onReply` gets the
   * reply, the timeout or the error, exactly once; without it the reply is
   * dropped and counted. Not aborted by the outer client going away; a call
   * still waiting when the gateway stops gets M2G_ERR_CALL_ABORTED.
   */
  send(path: string, init?: CallInit, onReply?: OnReply): void;
  log: Logger;
}

export type AppHandler = (req: AppRequest, ctx: AppContext) => unknown;
export interface AppRouteOptions {
  handler: AppHandler;
  /** The route's deadline in ms: past it, 504 and `req.signal` fires. Defaults to the gateway's handler timeout. */
  timeoutMs?: number;
}
export type AppDefinition = Record<string, AppHandler | AppRouteOptions>;

/**
 * Declares an app module's default export with its types checked:
 *
 *     export default defineApp({ 'GET /app/hello': () => 'hello' });
 */
export function defineApp<T extends AppDefinition>(app: T): T {
  return app;
}

/** What the gateway gives the app: a way to reach its handler pools. */
export interface AppHost {
  /** `async`: a ctx.send (a Brubeck service is told to route the response to a handler). */
  call(path: string, init: CallInit, async?: boolean): Promise<CallReply>;
  log: Logger;
  stats: { asyncReplies: number; asyncDropped: number; asyncErrors: number; timedOut?: number };
  /** Deadline of routes without their own `timeoutMs`. Defaults to 30,000 (the gateway's handler timeout). */
  timeoutMs?: number;
}

export interface CompiledApp {
  routes: CompiledRoute[];
  handlers: AppHandler[];
  /** Each route's own deadline (by route index), when it sets one. */
  timeouts: Array<number | undefined>;
}

/**
 * Checks and compiles an app module's default export.
 *
 * @throws Error naming a malformed route, handler or timeoutMs.
 */
export function compileApp(definition: unknown): CompiledApp {
  if (typeof definition !== 'object' || definition === null) throw new M2gateError(ERROR_CODES.MODULE, 'the app module must default-export an object of routes');
  const entries = Object.entries(definition as Record<string, unknown>).map(([pattern, value]) => {
    if (typeof value === 'function') return { pattern, timeoutMs: undefined, handler: value as AppHandler };
    const options = value as Partial<AppRouteOptions> | null;
    if (typeof options?.handler !== 'function') throw new M2gateError(ERROR_CODES.MODULE, `app route '${pattern}': expected a function or { handler, timeoutMs? }`);
    const { timeoutMs } = options;
    if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0)) {
      throw new M2gateError(ERROR_CODES.MODULE, `app route '${pattern}': timeoutMs must be a positive integer (got ${String(timeoutMs)})`);
    }
    return { pattern, timeoutMs, handler: options.handler };
  });
  return { routes: compileRoutes(entries), handlers: entries.map((e) => e.handler), timeouts: entries.map((e) => e.timeoutMs) };
}

const MAX_APP_BODY = 1024 * 1024;
const EMPTY = Buffer.alloc(0);

const queryOf = (url: string): string => {
  const q = url.indexOf('?');
  return q < 0 ? '' : url.slice(q + 1);
};

export class AppRoutes {
  readonly #routes: CompiledRoute[];
  readonly #handlers: AppHandler[];
  readonly #timeouts: Array<number | undefined>;
  /** One child logger per route, made once (pino's child() is not free per request). */
  readonly #logs: Logger[];
  readonly #host: AppHost;
  readonly #defaultTimeoutMs: number;
  readonly #deadlines = new DeadlineSweep();

  /** @throws M2gateError (M2G_ERR_MODULE) naming a malformed route or handler (see {@link compileApp}). */
  constructor(definition: unknown, host: AppHost) {
    ({ routes: this.#routes, handlers: this.#handlers, timeouts: this.#timeouts } = compileApp(definition));
    this.#logs = this.#routes.map((r) => host.log.child({ route: r.pattern }));
    this.#host = host;
    this.#defaultTimeoutMs = host.timeoutMs ?? 30_000;
  }

  get patterns(): string[] {
    return this.#routes.map((r) => r.pattern);
  }

  /** Requests whose handler has not settled yet and whose deadline has not passed. */
  get pending(): number {
    return this.#deadlines.size;
  }

  /** Serves `req` if an app route matches its path; returns false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const method = req.method ?? 'GET';
    const found = lookupRoute(this.#routes, method, path);
    if (found.badEncoding) {
      res.writeHead(400, { 'Content-Type': 'text/plain' }).end('Bad Request');
      return true;
    }
    if (!found.route) {
      if (!found.allow) return false;
      res.writeHead(405, { 'Content-Type': 'text/plain', Allow: found.allow.join(', ') }).end('Method Not Allowed');
      return true;
    }
    const index = found.index!;
    const params = found.params!;
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > MAX_APP_BODY) {
      // Refused before any of it is read, or asked for (Expect: 100-continue).
      refuseBody(res, 413, 'Entity Too Large');
      return true;
    }
    sendContinue(res);
    if (dispatchNow(req)) {
      this.#run(index, req, res, method, path, params, EMPTY);
      return true;
    }
    const dispatched = readingBody(req, res);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_APP_BODY) chunks.push(chunk);
    });
    req.on('end', () => {
      dispatched();
      if (size > MAX_APP_BODY) {
        res.writeHead(413, { 'Content-Type': 'text/plain', Connection: 'close' }).end('Entity Too Large');
        return;
      }
      this.#run(index, req, res, method, path, params, Buffer.concat(chunks, size));
    });
    return true;
  }

  #run(index: number, req: IncomingMessage, res: ServerResponse, method: string, path: string, params: Record<string, string>, body: Buffer): void {
    const host = this.#host;
    const handler = this.#handlers[index]!;
    const route = this.#routes[index]!;
    const log = this.#logs[index]!;
    // Made on first use of req.signal; `abortReason` holds an abort that came before that.
    let controller: AbortController | undefined;
    let abortReason: M2gateError | undefined;
    let timedOut = false;
    const abort = (reason: M2gateError): void => {
      if (controller === undefined) abortReason ??= reason;
      else if (!controller.signal.aborted) controller.abort(reason);
    };
    const signal = (): AbortSignal => {
      if (controller === undefined) {
        const c = (controller = new AbortController());
        if (abortReason === undefined && res.destroyed && !res.writableFinished) abortReason = new M2gateError(ERROR_CODES.CALL_ABORTED, 'the client went away');
        if (abortReason !== undefined) c.abort(abortReason);
        else {
          res.once('close', () => {
            if (!res.writableFinished) abort(new M2gateError(ERROR_CODES.CALL_ABORTED, 'the client went away'));
          });
        }
      }
      return controller.signal;
    };
    const request = new LiveAppRequest(method, path, params, parseQuery(queryOf(req.url ?? '')), req.headers, body, signal);
    const timeoutMs = this.#timeouts[index] ?? this.#defaultTimeoutMs;
    const deadline = this.#deadlines.add(timeoutMs, () => {
      timedOut = true;
      if (host.stats.timedOut !== undefined) host.stats.timedOut++;
      const err = new M2gateError(ERROR_CODES.APP_TIMEOUT, `app route '${route.pattern}' did not answer within ${timeoutMs} ms`);
      abort(err);
      fail(res, err, log);
    });
    const ctx: AppContext = {
      log,
      call: (callPath, init = {}) => host.call(callPath, { ...init, signal: init.signal ? AbortSignal.any([init.signal, signal()]) : signal() }),
      send: (callPath, init = {}, onReply) => {
        host.call(callPath, init, true).then(
          (reply) => {
            if (!onReply) return void host.stats.asyncDropped++;
            host.stats.asyncReplies++;
            safely(() => onReply(null, reply), log);
          },
          (err: unknown) => {
            host.stats.asyncErrors++;
            if (onReply) safely(() => onReply(err as M2gateError), log);
            else log.warn({ err: (err as Error).message, path: callPath }, 'async call failed (no response handler)');
          },
        );
      },
    };
    const failed = (err: unknown): void => {
      this.#deadlines.delete(deadline);
      if (timedOut) return;
      fail(res, err, log);
    };
    const answer = (value: unknown): void => {
      try {
        const init = toResponseInit(value);
        this.#deadlines.delete(deadline);
        // Past the deadline the client has its 504 already.
        if (timedOut || res.destroyed) return;
        // writeHead fixes the head before end() sees the body: without a length node:http would
        // answer HTTP/1.1 chunked and close an HTTP/1.0 keep-alive connection.
        setLength(init);
        res.writeHead(init.status, init.headers as Record<string, string | string[]>);
        res.end(req.method === 'HEAD' ? undefined : init.body);
      } catch (err) {
        failed(err);
      }
    };
    let value: unknown;
    let later: boolean;
    try {
      value = handler(request, ctx);
      later = isThenable(value);
    } catch (err) {
      return failed(err);
    }
    // A handler that answers at once is answered at once: no promise, no later turn.
    if (later) Promise.resolve(value).then(answer, failed);
    else answer(value);
  }
}

/**
 * One request as its handler sees it. A class, not an object literal with a
 * `get signal()`: V8 builds such a literal on its slow path, which measured
 * about a third of an app route's whole cost in the gateway (bench/README.md).
 */
class LiveAppRequest implements AppRequest {
  readonly method: string;
  readonly path: string;
  readonly params: Record<string, string>;
  readonly query: Record<string, string | string[]>;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
  readonly #signal: () => AbortSignal;

  constructor(method: string, path: string, params: Record<string, string>, query: Record<string, string | string[]>, headers: IncomingMessage['headers'], body: Buffer, signal: () => AbortSignal) {
    this.method = method;
    this.path = path;
    this.params = params;
    this.query = query;
    this.headers = headers;
    this.body = body;
    this.#signal = signal;
  }

  get signal(): AbortSignal {
    return this.#signal();
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** Gives a body its Content-Length unless the route framed it itself (or its status has none). */
function setLength(init: ReturnType<typeof toResponseInit>): void {
  const { body, headers, status } = init;
  if (body === undefined || status < 200 || status === 204 || status === 304) return;
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (lower === 'content-length' || lower === 'transfer-encoding') return;
  }
  headers['Content-Length'] = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
}

/** Answers a route that failed: our own errors carry their status (a ctx.call timeout is a 504), others are 500. */
function fail(res: ServerResponse, err: unknown, log: Logger): void {
  if (res.destroyed) return;
  const code = err instanceof M2gateError ? err.statusCode : undefined;
  const status = code ?? 500;
  const errorId = randomUUID();
  log.error({ err, errorId }, 'app route failed');
  const text = code !== undefined ? `${(err as Error).message} (error id ${errorId})\n` : `Internal Server Error (error id ${errorId})\n`;
  if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text);
}

function safely(fn: () => void, log: Logger): void {
  try {
    fn();
  } catch (err) {
    log.error({ err }, 'response handler threw');
  }
}

