/**
 * Brubeck requests into the Mongrel2 requests the service already runs, and
 * the HTTP replies its routes write back into Brubeck responses
 * (docs/brubeck-service-wire.md). Pure: bytes in, values out.
 *
 * Request → route: METHOD is the Brubeck method upper-cased (`request` →
 * `REQUEST`, so `'REQUEST /service/slow'` or `'* /service/slow'` routes match),
 * PATH the path; `arguments` becomes the query (scalar values and lists of
 * them; the whole dict is in the `x-brubeck-arguments` header), the request's
 * `headers` dict lower-cased headers, its JSON `body` the body
 * (`content-type: application/json`).
 *
 * Reply → response: status and reason become status_code and status_msg, the
 * reply's headers the headers dict (without the framing ones), a body that is
 * a JSON object goes as it is and any other is wrapped as
 * `{"RETURN_DATA": text}`, as Brubeck does; arguments are the request's.
 */
import { parseBrubeckJson, type BrubeckRequest, type BrubeckResponseFields } from '../protocol/brubeck-wire.js';
import type { ParsedHead } from '../protocol/http-response.js';

/** Headers a Mongrel2 request keeps for itself (upper case) or that frame HTTP. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection']);

/** The Mongrel2 request's path and headers for a Brubeck request. @throws ProtocolError (M2G_ERR_BRUBECK) on JSON fields that are not JSON. */
export function requestHeaders(req: BrubeckRequest): { path: string; headers: Record<string, string>; body: Buffer } {
  const args = parseBrubeckJson(req.arguments, 'arguments');
  const given = parseBrubeckJson(req.headers, 'headers');
  parseBrubeckJson(req.body, 'body');
  const query = new URLSearchParams();
  if (isDict(args)) {
    for (const [key, value] of Object.entries(args)) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') query.append(key, String(v));
      }
    }
  }
  const q = query.toString();
  const headers: Record<string, string> = {
    METHOD: req.method.toUpperCase(),
    VERSION: 'HTTP/1.1',
    URI: q === '' ? req.path : `${req.path}?${q}`,
    PATH: req.path,
    ...(q === '' ? {} : { QUERY: q }),
    PATTERN: req.path,
    URL_SCHEME: 'brubeck',
    REMOTE_ADDR: '',
  };
  if (isDict(given)) {
    for (const [name, value] of Object.entries(given)) {
      const key = name.toLowerCase();
      if (FRAMING.has(key) || key.startsWith('x-brubeck-')) continue;
      headers[key] = typeof value === 'string' ? value : JSON.stringify(value);
    }
  }
  headers['content-type'] = 'application/json';
  headers['content-length'] = String(req.body.length);
  headers['x-brubeck-arguments'] = req.arguments.toString('utf8');
  headers['x-brubeck-version'] = req.version;
  headers['x-brubeck-handle-response'] = req.handleResponse ? '1' : '0';
  // The body crosses to a worker thread: copy it out of the message.
  return { path: req.path, headers, body: Buffer.from(req.body) };
}

function isDict(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The Brubeck response for a reply `head` + `body` to `req`. */
export function responseFields(req: BrubeckRequest, head: ParsedHead, body: Buffer, passphrase: string, startTs: number, endTs: number): BrubeckResponseFields {
  const headers: Record<string, string> = {};
  for (const [name, value] of head.headers) {
    if (FRAMING.has(name.toLowerCase())) continue;
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return {
    version: req.version,
    sender: req.sender,
    connId: req.connId,
    requestTs: req.requestTs,
    startTs: String(Math.floor(startTs)),
    endTs: String(Math.floor(endTs)),
    passphrase,
    originSenderId: req.originSenderId,
    originConnId: req.originConnId,
    originOutAddr: req.originOutAddr,
    handleResponse: req.handleResponse,
    path: req.path,
    method: 'response',
    statusCode: String(head.status),
    statusMsg: JSON.stringify(head.reason),
    arguments: req.arguments,
    headers: JSON.stringify(headers),
    body: payload(body),
  };
}

/** A JSON object body as it is; anything else as `{"RETURN_DATA": text}` (Brubeck's rule). */
function payload(body: Buffer): string | Buffer {
  if (body.length === 0) return '{}';
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return JSON.stringify({ RETURN_DATA: body.toString('base64'), encoding: 'base64' });
  }
  if (text.trimStart().startsWith('{')) {
    try {
      if (isDict(JSON.parse(text))) return body;
    } catch {
      // not JSON after all: wrapped below
    }
  }
  return JSON.stringify({ RETURN_DATA: text });
}
