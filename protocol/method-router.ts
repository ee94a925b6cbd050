/**
 * The `"METHOD /path/:param"` router that service routes (workers/) and app
 * routes (gateway/app.ts) share. Pure: patterns in, matches out. Not Mongrel2's
 * route syntax (that is m2-pattern.ts and the gateway's route table): these
 * patterns are ours, matched segment by segment, first match in definition
 * order wins.
 *
 * - `:name` matches one non-empty path segment, percent-decoded into `params`;
 * - a final `*` matches the rest of the path (`params['*']`, possibly empty);
 * - `*` as the method matches any method; HEAD is served by GET routes;
 * - a path that matches with another method yields `allow` (for 405's `Allow`).
 */

/** One compiled `METHOD /path` pattern. */
export interface MethodRoute {
  /** The pattern as written, e.g. `GET /svc/fib/:n` (the log's `route` field). */
  readonly pattern: string;
  readonly method: string;
  readonly segments: readonly Segment[];
  /** Ends in `/*`: matches any rest of the path. */
  readonly rest: boolean;
}

interface Segment {
  literal?: string;
  param?: string;
}

/** What {@link matchMethodRoute} found: a route, or why there is none. */
export interface MethodRouteMatch {
  route?: MethodRoute;
  /** The route's position in the compiled list (its definition order). */
  index?: number;
  params?: Record<string, string>;
  /** Methods the path accepts, for 405's `Allow`, when the method does not match. */
  allow?: string[];
  /** A `:param` segment was not valid percent-encoding (answer 400). */
  badEncoding?: boolean;
}

const METHOD_RE = /^(\*|[A-Z][A-Z0-9_-]*)$/;

/**
 * Compiles route patterns, in order. Only `pattern` is read from each entry,
 * so callers pass their own entries (handler, timeout, ...) as they are.
 *
 * @throws Error naming the bad pattern.
 */
export function compileMethodRoutes(entries: ReadonlyArray<{ readonly pattern: string }>): MethodRoute[] {
  return entries.map(({ pattern: key }) => {
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
    return { pattern: key, method: match[1]!, segments, rest };
  });
}

/** The params when `parts` match the route's path, undefined when not, null for a bad escape. */
function matchPath(route: MethodRoute, parts: string[]): Record<string, string> | undefined | null {
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
 * `allow` lists the methods that would. Never throws.
 */
export function matchMethodRoute(routes: readonly MethodRoute[], method: string, path: string): MethodRouteMatch {
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
 * keys that could reach Object.prototype are skipped. Never throws.
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
