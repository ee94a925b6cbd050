/**
 * Builds the header map Mongrel2 1.12.2 sends to a handler (mongrel2-protocol.md §3.2) from a
 * `node:http` request, keys in Mongrel2's order so that `encodeRequest` writes the same bytes
 * wherever Mongrel2's own order is deterministic.
 *
 * Runs once per request: one pass over `req.rawHeaders`, no regular expressions, and a
 * header value is only copied when it holds bytes >= 0x80.
 *
 * What node:http does not let us reproduce (measured against Mongrel2 1.12.2; see
 * test/differential-request.test.ts):
 * - Trailing blanks of a value: Mongrel2 keeps them (`"lead and trail   "`, §3.2); llhttp
 *   strips them before `rawHeaders` is filled, so we send `"lead and trail"`.
 * - Control bytes 0x01-0x1F (except TAB) in values: Mongrel2 passes them through (§3.2);
 *   llhttp answers 400 itself, so such requests never reach us.
 * - Bytes that are not valid UTF-8: see {@link rawHeaderValue}.
 * - The order of client headers: Mongrel2 emits them in hash-table order (not reproducible);
 *   we use arrival order.
 * Leading blanks are stripped by llhttp, as Mongrel2 does. Not done here: the cap of 1280
 * distinct names (`limits.header_count`, §3.2; `checkRequest` refuses more than 1280 lines
 * first), METHOD `WEBSOCKET_HANDSHAKE` (§3.9) and the upload keys (§3.4), which their own
 * modules set. Unlike Mongrel2 (measured: it forwards them), a client's own
 * `x-mongrel2-upload-*` headers are dropped: a handler that trusts them would read and
 * delete any file the client names (§3.4).
 */
import type { IncomingMessage } from 'node:http';
import type { HeaderMap } from '../protocol/m2-request.js';

export interface BuildContext {
  /** The route key that matched: the PATTERN header (§3.2), e.g. `/handler`. */
  pattern: string;
  /** The peer's IP address as text: REMOTE_ADDR and x-forwarded-for. */
  remoteAddr: string;
  /** URL_SCHEME: `https` on a TLS listener. */
  scheme: 'http' | 'https';
  /** The Handler's header protocol; it decides the key order. */
  encoding: 'json' | 'tnetstring';
}

export interface BuiltRequest {
  /** The PATH field of the message frame (same as the PATH header). */
  path: string;
  headers: HeaderMap;
}

/** Mongrel2 keeps at most 5 values of a repeated header; later ones are dropped (§3.2). */
export const MAX_HEADER_VALUES = 5;

const XFF = 'x-forwarded-for';

/**
 * Turns a request into Mongrel2's header map.
 *
 * - PATH is the request target up to the first `?` or `#`, exactly as sent (no decoding or
 *   `..` normalisation, §3.1). URI is PATH plus `?query`, without the fragment. QUERY is
 *   present only if the target has a `?` before any `#` (`/x?` gives `""`); FRAGMENT only if
 *   it has a `#`, and is everything after the first `#` (`/a#f?g` gives FRAGMENT `f?g` and no
 *   QUERY) — all measured on Mongrel2.
 * - Client headers come from `req.rawHeaders` (not `req.headers`, which joins and drops
 *   duplicates): names lower-cased, a repeated name (any case) becomes a list of at most
 *   {@link MAX_HEADER_VALUES} values in arrival order at the position of its first occurrence.
 * - The client's `x-forwarded-for` is replaced by `ctx.remoteAddr` (a single string, §3.2).
 *   Mongrel2 writes it right after PATH in JSON and after the client headers in tnetstring
 *   (every fixture), and so do we.
 * - Headers named `__proto__` or `constructor` are dropped: Mongrel2 forwards them (measured),
 *   but `parseRequest` rejects such keys and a plain object cannot hold `__proto__` as data.
 *   These are the only lower-case names on `Object.prototype`, so every other name is safe.
 *
 * Key order, copied from the captures (§3.2 "Ordering"):
 * - json: PATH, x-forwarded-for, client headers, METHOD, VERSION, URI, QUERY, FRAGMENT,
 *   PATTERN, URL_SCHEME, REMOTE_ADDR;
 * - tnetstring: REMOTE_ADDR, METHOD, URL_SCHEME, PATTERN, FRAGMENT, QUERY, URI, VERSION, PATH,
 *   client headers, x-forwarded-for.
 *
 * Expects a request that `checkRequest` accepted (origin-form target, ASCII only); it throws
 * nothing itself. A header name that looks like an array index (`123`) is listed first by
 * JavaScript's own key order; Mongrel2's order for it is hash order anyway.
 */
export function buildHeaders(req: IncomingMessage, ctx: BuildContext): BuiltRequest {
  const target = req.url ?? '/';
  const hash = target.indexOf('#');
  const uri = hash < 0 ? target : target.slice(0, hash);
  const question = uri.indexOf('?');
  const path = question < 0 ? uri : uri.slice(0, question);
  const query = question < 0 ? undefined : uri.slice(question + 1);
  const fragment = hash < 0 ? undefined : target.slice(hash + 1);
  const method = req.method ?? 'GET';
  const version = `HTTP/${req.httpVersion}`;

  const headers: HeaderMap = {};
  if (ctx.encoding === 'json') {
    headers.PATH = path;
    headers[XFF] = ctx.remoteAddr;
    addClientHeaders(headers, req.rawHeaders);
    headers.METHOD = method;
    headers.VERSION = version;
    headers.URI = uri;
    if (query !== undefined) headers.QUERY = query;
    if (fragment !== undefined) headers.FRAGMENT = fragment;
    headers.PATTERN = ctx.pattern;
    headers.URL_SCHEME = ctx.scheme;
    headers.REMOTE_ADDR = ctx.remoteAddr;
  } else {
    headers.REMOTE_ADDR = ctx.remoteAddr;
    headers.METHOD = method;
    headers.URL_SCHEME = ctx.scheme;
    headers.PATTERN = ctx.pattern;
    if (fragment !== undefined) headers.FRAGMENT = fragment;
    if (query !== undefined) headers.QUERY = query;
    headers.URI = uri;
    headers.VERSION = version;
    headers.PATH = path;
    addClientHeaders(headers, req.rawHeaders);
    headers[XFF] = ctx.remoteAddr;
  }
  return { path, headers };
}

const UPLOAD_PREFIX = 'x-mongrel2-upload-';

// Mongrel2's own keys are upper-case and client names are lower-cased, so the two can
// only meet on x-forwarded-for, which is skipped here and set by the caller.
function addClientHeaders(headers: HeaderMap, raw: readonly string[]): void {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === XFF || name === '__proto__' || name === 'constructor' || name.startsWith(UPLOAD_PREFIX)) continue;
    const value = rawHeaderValue(raw[i + 1]!);
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (typeof prev === 'string') headers[name] = [prev, value];
    else if (prev.length < MAX_HEADER_VALUES) prev.push(value);
  }
}

/**
 * Recovers the text Mongrel2 would forward for a header value node:http decoded as latin1
 * (one char per byte). ASCII values are returned as they are. Otherwise the bytes are decoded
 * as UTF-8 with U+FFFD for invalid sequences: valid UTF-8 (the common case, fixture
 * `req-utf8-headers`) is then re-encoded by `encodeRequest` to exactly the client's bytes.
 * Invalid UTF-8 cannot be carried by a JS string that the codec writes as UTF-8, so Mongrel2's
 * raw bytes are not reproducible; replacement characters give the handler exactly the string
 * it gets from Mongrel2's bytes when it decodes them as UTF-8 (as `parseRequest` does), where
 * passing the latin1 text would show it different characters. Rejecting with 400 would refuse
 * requests Mongrel2 serves.
 */
export function rawHeaderValue(latin1: string): string {
  // Native and allocation-free: equal lengths mean every char is below 0x80.
  if (Buffer.byteLength(latin1, 'utf8') === latin1.length) return latin1;
  return Buffer.from(latin1, 'latin1').toString('utf8');
}
