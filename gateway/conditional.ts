/**
 * RFC 9110 conditional requests (§13) for a representation known by its entity-tag and
 * modification time: which of 200, 304 (Not Modified) or 412 (Precondition Failed) the
 * request's If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since headers ask
 * for. Pure: the caller (gateway/dir-target.ts) writes the answer.
 *
 * Mongrel2 1.12.2 checks the same four headers for Dir (§7), but differently in two ways we
 * do not copy: a well-formed If-Match that matches nothing is 412 here too, and `W/` tags
 * compare weakly in If-None-Match (§8.8.3.2).
 */
import type { IncomingHttpHeaders } from 'node:http';

/** One entity-tag, weak or strong (§8.8.3): commas may sit inside the quotes, so split by match, not by comma. */
const ENTITY_TAG = /(?:W\/)?"[^"]*"/g;

/** What the preconditions ask for: serve the representation, say it is unchanged, or refuse. */
export type ConditionalVerdict = 200 | 304 | 412;

/** The entity-tags of an If-Match / If-None-Match list; malformed members are skipped. */
export function entityTags(header: string): string[] {
  return header.match(ENTITY_TAG) ?? [];
}

/** Seconds since the epoch of an HTTP-date, or undefined when it does not parse (§13.1.3: then ignored). */
function dateSeconds(value: string): number | undefined {
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000);
}

/**
 * Evaluates the preconditions in RFC 9110 §13.2.2 order: If-Match, else If-Unmodified-Since
 * → 412; then If-None-Match, else If-Modified-Since → 304. `etag` is this representation's
 * strong tag (quoted); `mtimeSec` its Last-Modified in whole seconds, the resolution of an
 * HTTP-date. Never throws.
 */
export function evaluateConditionals(headers: IncomingHttpHeaders, etag: string, mtimeSec: number): ConditionalVerdict {
  const ifMatch = headers['if-match'];
  if (ifMatch !== undefined) {
    // §13.1.1: strong comparison, so a weak tag never satisfies If-Match.
    if (ifMatch.trim() !== '*' && !entityTags(ifMatch).includes(etag)) return 412;
  } else if (headers['if-unmodified-since'] !== undefined) {
    // §13.1.4: only evaluated without If-Match.
    const since = dateSeconds(headers['if-unmodified-since']);
    if (since !== undefined && mtimeSec > since) return 412;
  }
  const ifNoneMatch = headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    // §13.1.2: weak comparison, so `W/"x"` matches `"x"`. A present If-None-Match decides
    // alone: If-Modified-Since is then ignored (§13.1.3).
    if (ifNoneMatch.trim() === '*') return 304;
    const tags = entityTags(ifNoneMatch).map((t) => (t.startsWith('W/') ? t.slice(2) : t));
    return tags.includes(etag) ? 304 : 200;
  }
  if (headers['if-modified-since'] !== undefined) {
    const since = dateSeconds(headers['if-modified-since']);
    if (since !== undefined && mtimeSec <= since) return 304;
  }
  return 200;
}
