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
  /** Aborted when the client disconnects or the route's timeout passes. */
  signal: AbortSignal;
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

export type RoutesDefinition = Record<string, RouteHandler | RouteOptions>;

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
}

/**
 * Reads a routes module's default export into entries, in definition order.
 *
 * @throws M2gateError (M2G_ERR_MODULE) naming the key whose value is not a function or `{ handler }`.
 */
export function readServiceRoutes(def: unknown): ServiceRouteEntry[] {
  if (typeof def !== 'object' || def === null) throw new M2gateError(ERROR_CODES.MODULE, 'the routes module must default-export an object of routes');
  return Object.entries(def).map(([pattern, value]: [string, unknown]) => {
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
