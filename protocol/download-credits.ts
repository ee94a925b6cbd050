/**
 * Mongrel2's download flow control (`download.flow_control=1`,
 * mongrel2-protocol.md §3.7): the first request on a connection announces an
 * allowance of 102,400 bytes in its DOWNLOAD_CREDITS header, and each reply
 * message the front has finished writing to the client comes back as a
 * credits notice naming its byte count. A handler that never has more than
 * the allowance outstanding never overflows the front's writer queue (§4.5).
 */
import { encodeRequest, type HeaderEncoding, type HeaderMap, type M2Request } from './m2-request.js';

/** Mongrel2's hard-wired allowance per connection (§3.7). */
export const DOWNLOAD_CREDITS = 102_400;

/**
 * (advice) The largest paced message: half the allowance keeps a second
 * message queued while the front writes the first, so the client socket does
 * not wait a round trip for credits (measured: ~250 MiB/s through Mongrel2).
 */
export const PACED_MESSAGE_BYTES = DOWNLOAD_CREDITS / 2;

const KEY = 'DOWNLOAD_CREDITS';
const XFF = 'x-forwarded-for';

/**
 * The exact credits notice Mongrel2 sends once it has written `bytes` of a
 * reply to the client (fixtures `msg-credits.*`). Mongrel2's key order differs
 * by encoding and is stable for these two keys.
 */
export function encodeCredits(sender: string, connId: number, bytes: number, encoding: HeaderEncoding): Buffer {
  const n = String(bytes);
  const headers = encoding === 'json' ? { METHOD: 'JSON', [KEY]: n } : { [KEY]: n, METHOD: 'JSON' };
  return encodeRequest({ sender, connId, path: '@*', headers, body: '{"type":"credits"}' }, encoding);
}

/**
 * `headers` with DOWNLOAD_CREDITS added where Mongrel2 puts it (fixtures
 * `req-flow-control-first.*`): right after x-forwarded-for in JSON, right
 * before it in tnetstring (both hash order in Mongrel2, stable for a request
 * whose only client header is Host).
 */
export function withDownloadCredits(headers: HeaderMap, encoding: HeaderEncoding): HeaderMap {
  const out: HeaderMap = {};
  for (const key of Object.keys(headers)) {
    if (encoding === 'tnetstring' && key === XFF) out[KEY] = String(DOWNLOAD_CREDITS);
    out[key] = headers[key]!;
    if (encoding === 'json' && key === XFF) out[KEY] = String(DOWNLOAD_CREDITS);
  }
  out[KEY] ??= String(DOWNLOAD_CREDITS);
  return out;
}

/**
 * The byte count a request's DOWNLOAD_CREDITS header (or a credits notice)
 * carries, or undefined when it has none or it is not a plain decimal.
 */
export function creditsOf(req: Pick<M2Request, 'headers'>): number | undefined {
  const v = req.headers[KEY];
  if (typeof v !== 'string' || !/^[0-9]{1,9}$/.test(v)) return undefined;
  return Number(v);
}
