/**
 * Service routes: `"METHOD /path/:param"` patterns mapped to handler functions.
 * The same compiled table is used on the main thread (to answer 404/405 without
 * a thread hop) and in the worker threads (to find the function to run).
 */
import type { HeaderMap } from '../protocol/m2-request.js';
import type { RouteResponse } from '../protocol/route-result.js';

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

interface Segment {
  literal?: string;
  param?: string;
}

export interface CompiledRoute {
  /** The pattern as written, e.g. `GET /svc/fib/:n` (the log's `route` field). */
  pattern: string;
  method: string;
  segments: Segment[];
  /** Ends in `/*`: matches any rest of the path. */
  rest: boolean;
  timeoutMs: number | undefined;
}

export interface RouteLookup {
  route?: CompiledRoute;
  index?: number;
  params?: Record<string, string>;
  /** Methods the path accepts, for 405's `Allow`, when the method does not match. */
  allow?: string[];
  /** A `:param` segment was not valid percent-encoding. */
  badEncoding?: boolean;
}

const METHOD_RE = /^(\*|[A-Z][A-Z0-9_-]*)$/;

export interface RouteEntry {
  pattern: string;
  timeoutMs: number | undefined;
  handler: RouteHandler;
}

/**
 * Reads a routes module's default export into entries, in definition order.
 *
 * @throws Error naming the key whose value is not a function or `{ handler }`.
 */
export function routeEntries(def: unknown): RouteEntry[] {
  if (typeof def !== 'object' || def === null) throw new Error('the routes module must default-export an object of routes');
  return Object.entries(def).map(([pattern, value]: [string, unknown]) => {
    if (typeof value === 'function') return { pattern, timeoutMs: undefined, handler: value as RouteHandler };
    const options = value as Partial<RouteOptions> | null;
    if (typeof options !== 'object' || options === null || typeof options.handler !== 'function') {
      throw new Error(`route '${pattern}': expected a function or { handler, timeoutMs? }`);
    }
    if (options.timeoutMs !== undefined && !(Number.isFinite(options.timeoutMs) && options.timeoutMs > 0)) {
      throw new Error(`route '${pattern}': timeoutMs must be a positive number`);
    }
    return { pattern, timeoutMs: options.timeoutMs, handler: options.handler };
  });
}

/**
 * Compiles route patterns, in order.
 *
 * @throws Error naming the bad pattern.
 */
export function compileRoutes(entries: ReadonlyArray<{ pattern: string; timeoutMs?: number | undefined }>): CompiledRoute[] {
  return entries.map(({ pattern: key, timeoutMs }) => {
    const match = /^(\S+)\s+(\/\S*)$/.exec(key.trim());
    if (!match || !METHOD_RE.test(match[1]!)) throw new Error(`route '${key}': expected 'METHOD /path' (METHOD may be *)`);
    const parts = match[2]!.split('/').slice(1);
    const rest = parts[parts.length - 1] === '*';
    if (rest) parts.pop();
    const segments = parts.map((part): Segment => {
      if (part.startsWith(':')) {
        if (part.length === 1) throw new Error(`route '${key}': empty parameter name`);
        return { param: part.slice(1) };
      }
      if (part.includes('*')) throw new Error(`route '${key}': '*' is only allowed as the last segment`);
      return { literal: part };
    });
    return { pattern: key, method: match[1]!, segments, rest, timeoutMs };
  });
}

function matchPath(route: CompiledRoute, parts: string[]): Record<string, string> | undefined | null {
  const { segments } = route;
  if (route.rest ? parts.length < segments.length : parts.length !== segments.length) return undefined;
  let params: Record<string, string> | undefined;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const part = parts[i]!;
    if (seg.literal !== undefined) {
      if (seg.literal !== part) return undefined;
    } else {
      if (part === '') return undefined;
      try {
        (params ??= {})[seg.param!] = decodeURIComponent(part);
      } catch {
        return null;
      }
    }
  }
  if (route.rest) (params ??= {})['*'] = parts.slice(segments.length).join('/');
  return params ?? {};
}

/**
 * Finds the first route (in definition order) whose path and method match.
 * HEAD is served by GET routes. When the path matches but no method does,
 * `allow` lists the methods that would.
 */
export function lookupRoute(routes: readonly CompiledRoute[], method: string, path: string): RouteLookup {
  const parts = path.split('/').slice(1);
  let allow: Set<string> | undefined;
  for (let i = 0; i < routes.length; i++) {
    const route = routes[i]!;
    const params = matchPath(route, parts);
    if (params === undefined) continue;
    if (params === null) return { badEncoding: true };
    if (route.method === '*' || route.method === method || (method === 'HEAD' && route.method === 'GET')) {
      return { route, index: i, params };
    }
    (allow ??= new Set()).add(route.method);
    if (route.method === 'GET') allow.add('HEAD');
  }
  return allow ? { allow: [...allow] } : {};
}

/**
 * A query string (without `?`) as `req.query`: repeated keys become arrays,
 * keys that could reach Object.prototype are skipped.
 */
export function parseQuery(raw: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  if (raw === '') return query;
  for (const [key, value] of new URLSearchParams(raw)) {
    if (key === '__proto__' || key === 'constructor') continue;
    const prev = query[key];
    if (prev === undefined) query[key] = value;
    else if (typeof prev === 'string') query[key] = [prev, value];
    else prev.push(value);
  }
  return query;
}
