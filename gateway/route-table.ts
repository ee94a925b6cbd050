/**
 * Host and route selection exactly as Mongrel2 1.12.2 does it (§6.1, §6.2), quirks included.
 * Pure: no I/O. Everything is precomputed in the constructor, so a lookup compiles nothing
 * and allocates only the returned RouteMatch (plus a substring when the Host has a port).
 *
 * Mongrel2 keeps route prefixes (and reversed Host suffixes) in a ternary search tree and
 * asks it for "the longest key that is a prefix of the path". Its search has one twist, the
 * source of the prefix quirk: when the path runs out *inside* the tree (the path is a proper
 * prefix of some key and not a key itself) it follows the tree's "equal" links down to the
 * first key it meets. Measured with routes inserted in chosen orders, that key is:
 *   let K1 = the first inserted key that strictly extends the path;
 *   the answer is the shortest key that is a prefix of K1 and longer than the path.
 * (`/a` with [`/ab/x`, `/ac`] → `/ab/x`; with [`/ac`, `/ab/x`] → `/ac`; with
 * [`/abcde`, `/abc/`, `/abcd`] → `/abcd`.) Mongrel2 inserts in its database's row order,
 * which m2sh derives from a hash of the config, not the file order; we use the order the
 * routes are given in (config order), which makes the choice deterministic and agrees with
 * every measured case.
 */
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { compilePattern, type CompiledPattern } from '../protocol/m2-pattern.js';

export interface RouteEntry<T> {
  /** Route key as in the config, e.g. `/users/([0-9]+)$`. */
  key: string;
  target: T;
}

export interface HostEntry<T> {
  name: string;
  /** Host suffix, or `pattern)suffix` (§6.1); the config layer defaults it to `name`. */
  matching: string;
  routes: RouteEntry<T>[];
}

export interface RouteMatch<T> {
  host: HostEntry<T>;
  route: RouteEntry<T>;
  /** The route key up to its first `(` (the whole key when it has none). */
  prefix: string;
  /** The PATTERN header value: the full route key. */
  pattern: string;
}

/** A key in an AffixIndex: route prefix or Host suffix. */
interface Keyed {
  readonly key: string;
}

interface CompiledRoute<T> {
  readonly entry: RouteEntry<T>;
  readonly prefix: string;
  /** Undefined when the key has no `(`: the prefix alone decides. */
  readonly pattern: CompiledPattern | undefined;
}

/** All routes of one host sharing one prefix, in config order (§6.2 step 2 tries them in turn). */
interface RouteBucket<T> extends Keyed {
  readonly routes: CompiledRoute<T>[];
}

interface CompiledHost<T> extends Keyed {
  readonly entry: HostEntry<T>;
  /** The `(…)` part of `matching`, anchored at both ends; undefined for a plain suffix. */
  readonly pattern: CompiledPattern | undefined;
  readonly routes: AffixIndex<RouteBucket<T>>;
  /** JSON-socket routes (`@name`): matched by exact name only. */
  readonly json: Map<string, CompiledRoute<T>>;
}

/**
 * The ternary-search-tree lookup of Mongrel2 in closed form, for prefixes (routes) or
 * suffixes (hosts). Values are given in insertion order with distinct, non-empty keys
 * (an empty key cannot be stored in Mongrel2's tree, so it never matches: measured with
 * route `(.*)`).
 */
class AffixIndex<V extends Keyed> {
  readonly #suffix: boolean;
  readonly #exact = new Map<string, V>();
  /** Answers for strings that are a proper affix of some key but not a key (the quirk). */
  readonly #extending = new Map<string, V>();
  /** Longest first, for the ordinary longest-match case. */
  readonly #byLength: V[];

  constructor(values: readonly V[], suffix: boolean) {
    this.#suffix = suffix;
    for (const v of values) this.#exact.set(v.key, v);
    for (const v of values) {
      const k = v.key;
      for (let len = 1; len < k.length; len++) {
        const part = this.#affix(k, len);
        // The first key (in insertion order) that extends `part` is K1; keep the first.
        if (this.#exact.has(part) || this.#extending.has(part)) continue;
        for (let l = len + 1; l <= k.length; l++) {
          const hit = this.#exact.get(this.#affix(k, l));
          if (hit !== undefined) {
            this.#extending.set(part, hit);
            break;
          }
        }
      }
    }
    this.#byLength = [...values].sort((a, b) => b.key.length - a.key.length);
  }

  /** The entry Mongrel2's tree search returns for `s`, or undefined. */
  find(s: string): V | undefined {
    if (s.length === 0) return undefined;
    const direct = this.#exact.get(s) ?? this.#extending.get(s);
    if (direct !== undefined) return direct;
    for (const v of this.#byLength) {
      if (v.key.length < s.length && (this.#suffix ? s.endsWith(v.key) : s.startsWith(v.key))) return v;
    }
    return undefined;
  }

  #affix(k: string, len: number): string {
    return this.#suffix ? k.slice(k.length - len) : k.slice(0, len);
  }
}

function configError(message: string, cause: unknown): M2gateError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return new M2gateError(ERROR_CODES.CONFIG, `${message}${detail}`, { cause });
}

function compileRoutes<T>(host: HostEntry<T>): Pick<CompiledHost<T>, 'routes' | 'json'> {
  const buckets = new Map<string, RouteBucket<T>>();
  const json = new Map<string, CompiledRoute<T>>();
  for (const entry of host.routes) {
    if (entry.key.startsWith('@')) {
      if (!json.has(entry.key)) json.set(entry.key, { entry, prefix: entry.key, pattern: undefined });
      continue;
    }
    // §6.2: split at the first `(`; the rest (parens included) is the pattern.
    const paren = entry.key.indexOf('(');
    const prefix = paren < 0 ? entry.key : entry.key.slice(0, paren);
    let pattern: CompiledPattern | undefined;
    try {
      pattern = paren < 0 ? undefined : compilePattern(entry.key.slice(paren));
    } catch (err) {
      throw configError(`host '${host.name}': route '${entry.key}'`, err);
    }
    let bucket = buckets.get(prefix);
    if (bucket === undefined) {
      bucket = { key: prefix, routes: [] };
      buckets.set(prefix, bucket);
    }
    bucket.routes.push({ entry, prefix, pattern });
  }
  const values = [...buckets.values()].filter((b) => b.key.length > 0);
  return { routes: new AffixIndex(values, false), json };
}

function compileHost<T>(entry: HostEntry<T>): CompiledHost<T> {
  // §6.1: with a `)`, the text after the last one is the literal suffix and the text up to
  // it a pattern that must match the rest of the name completely (`(a-).ex.com` accepts
  // `aaa.ex.com`, `(a)\d.com` accepts `a\d.com`: measured). No `)` means all literal.
  const close = entry.matching.lastIndexOf(')');
  let pattern: CompiledPattern | undefined;
  try {
    pattern = close < 0 ? undefined : compilePattern(entry.matching.slice(0, close + 1), { anchorEnd: true });
  } catch (err) {
    throw configError(`host '${entry.name}': matching '${entry.matching}'`, err);
  }
  return { key: entry.matching.slice(close + 1), entry, pattern, ...compileRoutes(entry) };
}

/** Host and route lookup for one server. Immutable after construction. */
export class RouteTable<T> {
  readonly #hosts: AffixIndex<CompiledHost<T>>;
  readonly #default: CompiledHost<T>;

  /**
   * @param hosts The server's hosts, routes in config order (order decides ties, see above).
   * @param defaultHost The `default_host` name: the first host with this `name`.
   * @throws {M2gateError} code CONFIG when `defaultHost` names no host, or a route key or
   *   `matching` holds a malformed pattern.
   */
  constructor(hosts: HostEntry<T>[], defaultHost: string) {
    const compiled = hosts.map((h) => compileHost(h));
    const byDefault = compiled.find((h) => h.entry.name === defaultHost);
    if (byDefault === undefined) {
      throw new M2gateError(ERROR_CODES.CONFIG, `default_host '${defaultHost}' names no host of this server`);
    }
    this.#default = byDefault;
    // Hosts with the same suffix: only the first is reachable (measured: `(b+).ab.com`
    // after `(a+).ab.com` never matched, `bb.ab.com` went to the default host).
    const unique = new Map<string, CompiledHost<T>>();
    for (const h of compiled) if (h.key.length > 0 && !unique.has(h.key)) unique.set(h.key, h);
    this.#hosts = new AffixIndex([...unique.values()], true);
  }

  /**
   * §6.1: the host for a `Host` header value. The port (from the first `:`) is dropped, the
   * name compared case-sensitively as a suffix, including the quirk that a name which is
   * itself a proper suffix of a configured suffix selects that host (`xact.org` → `exact.org`).
   * A host whose `matching` has a pattern never falls back to a shorter suffix: if the
   * pattern fails, or the name is shorter than the suffix, the default host is used, as it is
   * when nothing matches or the header is missing.
   */
  selectHost(hostHeader: string | undefined): HostEntry<T> {
    return this.#selectHost(hostHeader).entry;
  }

  /**
   * §6.2: the route for `path` (a latin1 byte view) on the host chosen by `selectHost`.
   * Longest prefix wins; its routes are tried in config order, a pattern matched against the
   * rest of the path (anchored at the end only with a trailing `$`); no fallback to shorter
   * prefixes. When the path is a proper prefix of the chosen prefix (the quirk: `/us` →
   * `/users`) only the bucket's first route counts, and only if it has no pattern (measured:
   * `/a` with [`/ab(x)`, `/ab`] → 404, with [`/ab`, `/ab(x)`] → `/ab`). Undefined means 404.
   *
   * Paths starting with `@` (JSON sockets) match only a route with exactly that key. This is
   * a design choice, not Mongrel2's behaviour: Mongrel2 runs them through the same prefix
   * search (measured: `@chatroom` and `@ch` → `@chat`, `@c(x)` is a pattern route).
   */
  match(hostHeader: string | undefined, path: string): RouteMatch<T> | undefined {
    const host = this.#selectHost(hostHeader);
    if (path.startsWith('@')) {
      const route = host.json.get(path);
      return route === undefined ? undefined : result(host, route);
    }
    const bucket = host.routes.find(path);
    if (bucket === undefined) return undefined;
    if (path.length < bucket.key.length) {
      const first = bucket.routes[0];
      return first !== undefined && first.pattern === undefined ? result(host, first) : undefined;
    }
    for (const route of bucket.routes) {
      if (route.pattern === undefined || route.pattern.match(path, route.prefix.length) >= 0) {
        return result(host, route);
      }
    }
    return undefined;
  }

  #selectHost(hostHeader: string | undefined): CompiledHost<T> {
    if (hostHeader === undefined) return this.#default;
    const colon = hostHeader.indexOf(':');
    const name = colon < 0 ? hostHeader : hostHeader.slice(0, colon);
    const host = this.#hosts.find(name);
    if (host === undefined) return this.#default;
    if (host.pattern === undefined) return host;
    const rest = name.length - host.key.length;
    return rest >= 0 && host.pattern.match(name, 0, rest) >= 0 ? host : this.#default;
  }
}

function result<T>(host: CompiledHost<T>, route: CompiledRoute<T>): RouteMatch<T> {
  return { host: host.entry, route: route.entry, prefix: route.prefix, pattern: route.entry.key };
}
