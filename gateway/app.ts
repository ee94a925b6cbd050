/**
 * App routes: light I/O work done in the gateway's own event loop, matched
 * before the configuration's routes, with the service routes' pattern syntax
 * and return values. Each handler gets a `ctx` with Brubeck's two service
 * patterns: `ctx.call` (wait for the reply) and `ctx.send` (fire and forget,
 * with an optional response handler).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { toResponseInit } from '../protocol/route-result.js';
import { compileMethodRoutes as compileRoutes, matchMethodRoute as lookupRoute, parseQuery, type MethodRoute as CompiledRoute } from '../protocol/method-router.js';
import type { CallInit, CallReply } from './handler/index.js';
import { sendContinue } from './expect-continue.js';
import { refuseBody } from './short-answer.js';

export interface AppRequest {
  method: string;
  /** The raw request path (percent-escapes kept). */
  path: string;
  params: Record<string, string>;
  query: Record<string, string | string[]>;
  /** node:http's header object (lower-cased names). */
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
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
export type AppDefinition = Record<string, AppHandler | { handler: AppHandler }>;

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
  stats: { asyncReplies: number; asyncDropped: number; asyncErrors: number };
}

const MAX_APP_BODY = 1024 * 1024;

const queryOf = (url: string): string => {
  const q = url.indexOf('?');
  return q < 0 ? '' : url.slice(q + 1);
};

export class AppRoutes {
  readonly #routes: CompiledRoute[];
  readonly #handlers: AppHandler[];
  readonly #host: AppHost;

  /** @throws Error naming a malformed route or handler. */
  constructor(definition: unknown, host: AppHost) {
    if (typeof definition !== 'object' || definition === null) throw new Error('the app module must default-export an object of routes');
    const entries = Object.entries(definition as Record<string, unknown>).map(([pattern, value]) => {
      const handler = typeof value === 'function' ? value : (value as { handler?: unknown } | null)?.handler;
      if (typeof handler !== 'function') throw new Error(`app route '${pattern}': expected a function or { handler }`);
      return { pattern, handler: handler as AppHandler };
    });
    this.#routes = compileRoutes(entries);
    this.#handlers = entries.map((e) => e.handler);
    this.#host = host;
  }

  get patterns(): string[] {
    return this.#routes.map((r) => r.pattern);
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
    const handler = this.#handlers[found.index!]!;
    const pattern = found.route.pattern;
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > MAX_APP_BODY) {
      // Refused before any of it is read, or asked for (Expect: 100-continue).
      refuseBody(res, 413, 'Entity Too Large');
      return true;
    }
    sendContinue(res);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_APP_BODY) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_APP_BODY) {
        res.writeHead(413, { 'Content-Type': 'text/plain', Connection: 'close' }).end('Entity Too Large');
        return;
      }
      const controller = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) controller.abort(new M2gateError(ERROR_CODES.CALL_ABORTED, 'the client went away'));
      });
      const request: AppRequest = {
        method,
        path,
        params: found.params!,
        query: parseQuery(queryOf(req.url ?? '')),
        headers: req.headers,
        body: Buffer.concat(chunks, size),
        signal: controller.signal,
      };
      void this.#run(handler, pattern, req, res, request);
    });
    return true;
  }

  async #run(handler: AppHandler, pattern: string, req: IncomingMessage, res: ServerResponse, request: AppRequest): Promise<void> {
    const host = this.#host;
    const log = host.log.child({ route: pattern });
    const ctx: AppContext = {
      log,
      call: (path, init = {}) => host.call(path, { ...init, signal: init.signal ? AbortSignal.any([init.signal, request.signal]) : request.signal }),
      send: (path, init = {}, onReply) => {
        host.call(path, init, true).then(
          (reply) => {
            if (!onReply) return void host.stats.asyncDropped++;
            host.stats.asyncReplies++;
            safely(() => onReply(null, reply), log);
          },
          (err: unknown) => {
            host.stats.asyncErrors++;
            if (onReply) safely(() => onReply(err as M2gateError), log);
            else log.warn({ err: (err as Error).message, path }, 'async call failed (no response handler)');
          },
        );
      },
    };
    try {
      const init = toResponseInit(await handler(request, ctx));
      if (res.destroyed) return;
      res.writeHead(init.status, init.headers as Record<string, string | string[]>);
      res.end(req.method === 'HEAD' ? undefined : init.body);
    } catch (err) {
      if (res.destroyed) return;
      // Our own errors carry their status (a ctx.call timeout is a 504).
      const code = err instanceof M2gateError ? err.statusCode : undefined;
      const status = code ?? 500;
      const errorId = randomUUID();
      log.error({ err, errorId }, 'app route failed');
      const text = code !== undefined ? `${(err as Error).message} (error id ${errorId})\n` : `Internal Server Error (error id ${errorId})\n`;
      if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(text);
    }
  }
}

function safely(fn: () => void, log: Logger): void {
  try {
    fn();
  } catch (err) {
    log.error({ err }, 'response handler threw');
  }
}

