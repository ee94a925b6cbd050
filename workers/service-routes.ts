/**
 * Service routes: `"METHOD /path/:param"` patterns mapped to handler functions.
 * The main thread compiles the patterns (protocol/method-router.ts) to answer
 * 404/405 without a thread hop; the worker threads read the same module in the
 * same order and run the function at the index the main thread matched.
 */
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import type { HeaderMap } from '../protocol/m2-request.js';
import type { RouteResponse } from '../protocol/route-result.js';
import type { UploadedFile } from './upload-body.js';

/** The request a route handler receives. Plain data, cloned into the worker thread. */
export interface ServiceRequest {
  method: string;
  /** The raw request path, as the front sent it (percent-escapes kept). */
  path: string;
  /** `:name` segments, percent-decoded; a trailing `*` is `params['*']`. */
  params: Record<string, string>;
  /** Parsed from the QUERY header; repeated keys become arrays. */
  query: Record<string, string | string[]>;
  headers: HeaderMap;
  body: Buffer;
  connId: number;
  sender: string;
  /** Aborted when the client disconnects or the route's timeout passes. Made on first read. */
  readonly signal: AbortSignal;
  /**
   * Only on routes with `uploads: true`: a body the front spooled to its upload store
   * (Mongrel2's async upload, over `limits.content_length`) is this file, and `body` is
   * empty. Stream it (`fs.createReadStream(req.upload.path)`); the service removes it once
   * the reply is sent (a route may move it away to keep it).
   */
  upload?: UploadedFile;
}

/** A full response `{ status, headers?, body? }`. Any other object a handler returns is sent as JSON. */
export type ServiceResponse = RouteResponse;

/**
 * What a handler may return (or resolve to): a string (text/plain), bytes
 * (application/octet-stream), a {@link ServiceResponse}, `undefined` (204), or
 * any other JSON-able value (application/json). Any value is accepted, so the
 * type is `unknown`; the cases above say how each is sent.
 */
export type RouteResult = unknown;

export type RouteHandler = (req: ServiceRequest) => RouteResult;

export interface RouteOptions {
  handler: RouteHandler;
  /** Overrides the service's `--timeout` for this route, in ms. */
  timeoutMs?: number;
  /** Takes async uploads as `req.upload` (a file); without it an upload gets 413. */
  uploads?: boolean;
}

/** A connection of a `'WS /path'` route, as its handlers see it on a worker thread (workers/ws-worker.ts). */
export interface WebSocketConnection {
  /** The Mongrel2 connection id. */
  readonly id: number;
  /** The front's sender (the Handler's send_ident). */
  readonly sender: string;
  /** Plain data naming this connection: keep it, or pass it to another thread, for webSocketSend(). */
  readonly ref: WebSocketRef;
  readonly path: string;
  readonly params: Record<string, string>;
  readonly query: Record<string, string | string[]>;
  /** The handshake's headers, as Mongrel2 sends them. */
  readonly headers: HeaderMap;
  /** A text frame (string) or a binary frame (bytes) to this connection. */
  send(data: string | Uint8Array): void;
  /**
   * One message to several connections in one Mongrel2 reply (multi-id, at most 128 ids
   * a reply): to `ids`, or without them to every connection open on this route, this one too.
   */
  broadcast(data: string | Uint8Array, ids?: readonly number[]): void;
  /** Sends a close frame and closes the connection; the route's close handler then runs. */
  close(code?: number, reason?: string): void;
}

/** Names a WebSocket connection: what webSocketSend() takes, on any thread. */
export interface WebSocketRef {
  sender: string;
  id: number;
  /** Which of the service's gateways the connection is on (a service may join several): copy refs from `ws.ref`, never build one by hand. */
  gateway?: number;
}

/** What open() may return: `false` refuses the upgrade with 403, a `{ status, headers?, body? }` with that response. */
export type WebSocketOpenResult = undefined | void | boolean | RouteResponse;

/**
 * A `'WS /path'` route: handlers run on worker threads, one at a time per
 * connection and in the connection's order; each may be async.
 */
export interface WebSocketRoute {
  /** The upgrade: runs before the 101; what it sends follows the 101. Without it every upgrade is accepted. */
  open?: (ws: WebSocketConnection, req: Omit<ServiceRequest, 'signal'>) => WebSocketOpenResult | Promise<WebSocketOpenResult>;
  /** A text message (string) or a binary one (Buffer); fragments are already joined. */
  message?: (ws: WebSocketConnection, data: string | Buffer) => unknown;
  /** Once per connection however it ended: 1005 without a code, 1006 when the client went away, 1011 after a handler failed. */
  close?: (ws: WebSocketConnection, code: number, reason: string) => unknown;
  /** Each handler's deadline, in ms (default the service's `--timeout`): past it the connection is closed with 1011. */
  timeoutMs?: number;
  /**
   * The route sends from background work (a timer, a promise settled after its handler
   * returned): every thread of the service then keeps its event loop running between
   * tasks (piscina's 'async' atomics, measured ~15% fewer trivial tasks a second), where
   * by default an idle thread sleeps and such a send would wait for its next task.
   */
  background?: boolean;
}

export type RoutesDefinition = Record<string, RouteHandler | RouteOptions | WebSocketRoute>;

/**
 * Declares a routes module's default export with its types checked:
 *
 *     export default defineRoutes({ 'GET /svc/hello': () => 'hello' });
 */
export function defineRoutes<T extends RoutesDefinition>(routes: T): T {
  return routes;
}

export interface ServiceRouteEntry {
  pattern: string;
  timeoutMs: number | undefined;
  uploads: boolean;
  handler: RouteHandler;
  /** Set for a `'WS /path'` route (its `handler` is then never called). */
  ws?: WebSocketRoute;
}

/** The method of WebSocket routes: `'WS /path'`. */
export const WS_METHOD = 'WS';

const notHttp: RouteHandler = () => {
  throw new Error('a WebSocket route does not answer HTTP');
};

/**
 * Reads a routes module's default export into entries, in definition order.
 *
 * @throws M2gateError (M2G_ERR_MODULE) naming the key whose value is not a function or `{ handler }`.
 */
export function readServiceRoutes(def: unknown): ServiceRouteEntry[] {
  if (typeof def !== 'object' || def === null) throw new M2gateError(ERROR_CODES.MODULE, 'the routes module must default-export an object of routes');
  return Object.entries(def).map(([pattern, value]: [string, unknown]) => {
    if (pattern.trim().startsWith(`${WS_METHOD} `)) return { pattern, timeoutMs: readTimeout(pattern, value), uploads: false, handler: notHttp, ws: readWebSocketRoute(pattern, value) };
    if (typeof value === 'function') return { pattern, timeoutMs: undefined, uploads: false, handler: value as RouteHandler };
    const options = value as Partial<RouteOptions> | null;
    if (typeof options !== 'object' || options === null || typeof options.handler !== 'function') {
      throw new M2gateError(ERROR_CODES.MODULE, `route '${pattern}': expected a function or { handler, timeoutMs? }`);
    }
    if (options.timeoutMs !== undefined && !(Number.isFinite(options.timeoutMs) && options.timeoutMs > 0)) {
      throw new M2gateError(ERROR_CODES.MODULE, `route '${pattern}': timeoutMs must be a positive number`);
    }
    if (options.uploads !== undefined && typeof options.uploads !== 'boolean') throw new M2gateError(ERROR_CODES.MODULE, `route '${pattern}': uploads must be true or false`);
    return { pattern, timeoutMs: options.timeoutMs, uploads: options.uploads === true, handler: options.handler };
  });
}

function readTimeout(pattern: string, value: unknown): number | undefined {
  const t = (value as { timeoutMs?: unknown } | null)?.timeoutMs;
  if (t !== undefined && !(typeof t === 'number' && Number.isFinite(t) && t > 0)) throw new M2gateError(ERROR_CODES.MODULE, `route '${pattern}': timeoutMs must be a positive number`);
  return t;
}

function readWebSocketRoute(pattern: string, value: unknown): WebSocketRoute {
  if (typeof value !== 'object' || value === null) throw new M2gateError(ERROR_CODES.MODULE, `route '${pattern}': expected { open?, message?, close?, timeoutMs? }`);
  const route = value as Record<string, unknown>;
  for (const name of ['open', 'message', 'close'] as const) {
    if (route[name] !== undefined && typeof route[name] !== 'function') throw new M2gateError(ERROR_CODES.MODULE, `route '${pattern}': ${name} must be a function`);
  }
  if (route.open === undefined && route.message === undefined && route.close === undefined) {
    throw new M2gateError(ERROR_CODES.MODULE, `route '${pattern}': a WebSocket route needs open, message or close`);
  }
  return value;
}
