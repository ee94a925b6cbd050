/**
 * Requests node:http accepts but a careful front must refuse before any handler sees them:
 * framing that a later hop could read differently (request smuggling), and request lines
 * Mongrel2 1.12.2 answers with 400 (mongrel2-protocol.md §10) but llhttp lets through.
 *
 * llhttp already answers 400 itself (and emits 'clientError') for: obs-fold, bare CR, NUL,
 * DEL and other control bytes in values, raw space or non-ASCII bytes in the target,
 * Content-Length together with chunked, duplicate Content-Length, repeated or unknown-final
 * Transfer-Encoding like `identity`, lower-case or unknown methods (`get`, `PURGE2`), HTTP/1.2
 * and up. The framing checks for those are kept anyway: they cost a few compares, and with
 * `insecureHTTPParser` llhttp lets Content-Length + chunked, chunked twice and `identity`
 * through (measured). That mode also lets NUL, control bytes and obs-fold in values through,
 * which are not checked here: run the gateway with the strict parser. Measured in
 * test/request-hygiene.test.ts.
 */
import type { IncomingMessage } from 'node:http';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';

export interface HygieneLimits {
  /**
   * Most header lines (not distinct names) a request may carry; more → 431. Defaults to 1280,
   * Mongrel2's `limits.header_count` (§3.2). Mongrel2 counts distinct names and drops the
   * extra ones, but its 4096-byte head buffer (§10) cannot hold more than ~1019 lines, so this
   * never refuses a request Mongrel2 would serve. Only effective when the server's
   * `maxHeadersCount` is 0 or above this value: node 20's default silently keeps about 1000
   * pairs of `rawHeaders` (measured: 1030 lines arrive as 1023).
   */
  maxHeaders: number;
}

export const HYGIENE_DEFAULTS: Readonly<HygieneLimits> = { maxHeaders: 1280 };

export interface Rejection {
  /** The HTTP status to answer with (and then close the connection). */
  status: number;
  /** Why, for the log; not meant for the client. */
  message: string;
}

// RFC 3986 characters Mongrel2 accepts in an origin-form target (§10): unreserved, sub-delims,
// `:`, `@`, `/`, `?` and `%` (escapes checked separately). Not `[ ]` (IP literals only),
// not `#` (a fragment never belongs in a request, RFC 9112 §3.2), not `{ } ^ | \ " < >` or
// backtick (Mongrel2 without `request.relaxed`).
const TARGET_CHARS = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%") {
  TARGET_CHARS[c.charCodeAt(0)] = 1;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

const bad = (message: string): Rejection => ({ status: 400, message });

/**
 * Checks one request; call it from the 'request' event before routing.
 *
 * Returns `undefined` to accept, otherwise the status to answer with:
 * - 400: method not 1-20 of `A-Z0-9` (Mongrel2 §10; llhttp lets `M-SEARCH` through);
 *   version not HTTP/1.0 or 1.1 (llhttp lets 0.9 and 2.0 through); target `*`, absolute-form
 *   or authority-form (Mongrel2 routes none of them: 404), with a `#` (Mongrel2 forwards it as FRAGMENT;
 *   RFC 9112 has no fragment in a request), a `%` not followed by two hex digits (Mongrel2:
 *   400, measured with `%zz`), or any character outside the set above; Host twice; Content-Length twice
 *   (even if equal) or not decimal digits; Content-Length with Transfer-Encoding;
 *   Transfer-Encoding on HTTP/1.0 (RFC 9112 §6.1); a Transfer-Encoding whose final coding is
 *   not `chunked` (RFC 9112 §6.3: the length cannot be determined).
 * - 431: more header lines than `limits.maxHeaders`.
 * - 501: `chunked` preceded by other codings, e.g. `gzip, chunked` (RFC 9112 §6.1: a coding the
 *   server does not understand). Mongrel2 only knows the exact, case-sensitive value `chunked`
 *   and reads any other value as "no body" (measured); coding names are case-insensitive
 *   (RFC 9112 §7) and llhttp de-chunks `CHUNKED`, so we accept it.
 *
 * @param limits - `maxHeaders` defaults to {@link HYGIENE_DEFAULTS}.maxHeaders (1280).
 * @throws M2gateError (code M2G_ERR_CONFIG) if `limits.maxHeaders` is not a positive integer.
 */
export function checkRequest(req: IncomingMessage, limits?: Partial<HygieneLimits>): Rejection | undefined {
  const maxHeaders = limits?.maxHeaders ?? HYGIENE_DEFAULTS.maxHeaders;
  if (!Number.isSafeInteger(maxHeaders) || maxHeaders < 1) {
    throw new M2gateError(ERROR_CODES.CONFIG, `maxHeaders must be a positive integer, got ${String(maxHeaders)}`);
  }

  const method = req.method ?? '';
  if (method.length < 1 || method.length > 20) return bad('method must be 1-20 characters');
  for (let i = 0; i < method.length; i++) {
    const c = method.charCodeAt(i);
    if (!((c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39))) return bad(`method '${method}' is not upper-case letters and digits`);
  }
  const version = req.httpVersion;
  if (version !== '1.1' && version !== '1.0') return bad(`HTTP/${version} is not supported`);

  const targetProblem = checkTarget(req.url ?? '');
  if (targetProblem !== undefined) return bad(targetProblem);

  const raw = req.rawHeaders;
  const lines = raw.length >> 1;
  if (lines > maxHeaders) return { status: 431, message: `${lines} header lines exceed maxHeaders ${maxHeaders}` };

  let hosts = 0;
  let lengths = 0;
  let codings: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Compare the length first: only three names matter and most lines are none of them.
    if (name.length === 4) {
      if (is(name, 'host', 'Host') && ++hosts > 1) return bad('more than one Host header');
    } else if (name.length === 14) {
      if (!is(name, 'content-length', 'Content-Length')) continue;
      if (++lengths > 1) return bad('more than one Content-Length header');
      const value = raw[i + 1]!;
      if (value.length === 0) return bad('empty Content-Length');
      for (let k = 0; k < value.length; k++) {
        const c = value.charCodeAt(k);
        if (c < 0x30 || c > 0x39) return bad(`Content-Length '${value}' is not a decimal number`);
      }
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      codings = codings === undefined ? raw[i + 1]! : `${codings},${raw[i + 1]!}`;
    }
  }
  if (codings === undefined) return undefined;
  if (lengths > 0) return bad('both Content-Length and Transfer-Encoding');
  if (version === '1.0') return bad('Transfer-Encoding on an HTTP/1.0 request');
  return checkCodings(codings);
}

/** A header name compared case-insensitively, the two usual spellings without lower-casing a copy. */
function is(name: string, lower: string, usual: string): boolean {
  return name === usual || name === lower || name.toLowerCase() === lower;
}

function checkTarget(target: string): string | undefined {
  if (target === '*') return 'asterisk-form target is not routable';
  if (target.charCodeAt(0) !== 0x2f /* / */) return 'only origin-form targets (starting with /) are accepted';
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x23 /* # */) return 'fragment (#) in the request target';
    if (c >= 128 || TARGET_CHARS[c] === 0) return `character 0x${c.toString(16)} is not allowed in the request target`;
    if (c === 0x25 /* % */ && !(isHex(target.charCodeAt(i + 1)) && isHex(target.charCodeAt(i + 2)))) {
      return 'bad percent-escape in the request target';
    }
  }
  return undefined;
}

function checkCodings(codings: string): Rejection | undefined {
  const list: string[] = [];
  for (const item of codings.split(',')) {
    const coding = item.trim().toLowerCase();
    if (coding !== '') list.push(coding); // RFC 9110 §5.6.1: empty list elements are ignored
  }
  if (list.at(-1) !== 'chunked') return bad(`Transfer-Encoding '${codings}' does not end in chunked`);
  // RFC 9112 §6.1: chunked must not be applied twice.
  if (list.indexOf('chunked') < list.length - 1) return bad(`Transfer-Encoding '${codings}' applies chunked twice`);
  if (list.length > 1) return { status: 501, message: `Transfer-Encoding '${codings}' is not implemented` };
  return undefined;
}
