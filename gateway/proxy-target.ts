/**
 * HTTP upstream for a `Proxy` route (§8), through one undici `Pool` per target.
 *
 * Like Mongrel2: the path is forwarded unchanged (route prefix *not* stripped), `Host` and
 * `X-Forwarded-For` pass through as the client sent them, nothing is added, and the upstream
 * status, reason phrase, headers (repeated ones such as `Set-Cookie` included) and body come
 * back as sent. Unreachable upstream → `502 Bad Gateway` and close (§8, §9 body).
 *
 * Deliberate differences from Mongrel2 1.12.2:
 * - Requests are re-framed, not copied byte for byte: hop-by-hop headers (RFC 9110 §7.6.1:
 *   `Connection` and the names it lists, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
 *   `Transfer-Encoding`, `Upgrade`) are dropped both ways, so each side keeps its own framing
 *   and keep-alive. This also makes pipelining safe (Mongrel2 mixes up pipelined proxy
 *   requests, §8).
 * - `Expect` is dropped: the gateway answers `100 Continue` itself when it starts forwarding
 *   (expect-continue.ts), and undici refuses the header.
 * - Upstream connections are pooled per target (keep-alive, up to `connections`) instead of one
 *   backend connection per client connection.
 * - Timeouts: no response head in time → `504 Gateway Timeout` (Mongrel2 only has its idle
 *   reaper, §5.4). A request undici refuses to send (e.g. a duplicate `Host`) →
 *   `400 Bad Request`.
 * - Upgrade / WebSocket requests are not tunnelled (their `Upgrade` header is hop-by-hop).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';
import type { ConfigProxy } from '../protocol/mongrel2-conf.js';
import type { RouteTarget } from './route-target.js';
import { sendContinue } from './expect-continue.js';
import { sendShortAnswer } from './short-answer.js';

export interface ProxyTargetOptions {
  /** TCP connect timeout towards the upstream, ms. Defaults to 5000. Expiry → 504. */
  connectTimeoutMs?: number;
  /** Time allowed for the upstream's complete response head, ms. Defaults to 30000. Expiry → 504. */
  headersTimeoutMs?: number;
  /** Longest gap between upstream body chunks, ms. Defaults to 30000. Expiry → client socket destroyed. */
  bodyTimeoutMs?: number;
  /** Pool size: most concurrent upstream connections. Defaults to 64. */
  connections?: number;
}

// RFC 9110 §7.6.1 hop-by-hop fields, plus `expect` (see the module comment). `proxy-*` is
// matched by prefix.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect']);
// undici error codes meaning "no response head in time".
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT']);
// undici refused the request itself: a client error, not an upstream failure.
const BAD_REQUEST_CODES = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);

/**
 * Copies a flat `[name, value, name, value, …]` header list without hop-by-hop fields,
 * keeping names' case, order and repeats (several `Set-Cookie` stay several lines).
 */
function endToEnd(raw: readonly string[]): string[] {
  const listed = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() !== 'connection') continue;
    for (const token of (raw[i + 1] ?? '').split(',')) listed.add(token.trim().toLowerCase());
  }
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || listed.has(lower)) continue;
    out.push(name, raw[i + 1] ?? '');
  }
  return out;
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** Forwards requests for one `Proxy(addr, port)` config entry. */
export class ProxyTarget implements RouteTarget {
  readonly kind = 'proxy';
  readonly #pool: Pool;

  /**
   * Creates the pool; connects lazily, on the first request.
   * @throws {import('undici').errors.InvalidArgumentError} when an option is not a valid number.
   */
  constructor(config: ConfigProxy, options: ProxyTargetOptions = {}) {
    const host = config.addr.includes(':') ? `[${config.addr}]` : config.addr;
    this.#pool = new Pool(`http://${host}:${config.port}`, {
      connections: options.connections ?? 64,
      connectTimeout: options.connectTimeoutMs ?? 5000,
      headersTimeout: options.headersTimeoutMs ?? 30_000,
      bodyTimeout: options.bodyTimeoutMs ?? 30_000,
    });
  }

  /**
   * Forward `req` to the upstream and stream the answer into `res`. Always ends or destroys the
   * response; never throws or rejects. Before the upstream's head: 502 (failure), 504 (timeout),
   * 400 (request undici cannot send). After it: the client socket is destroyed, since the status
   * can no longer change. If the client goes away, the upstream request is aborted.
   */
  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.#serve(req, res);
    } catch {
      res.destroy(); // belt and braces: nothing above is expected to throw
    }
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const abort = new AbortController();
    // 'close' before 'finish' means the client left: stop the upstream work too.
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    if (res.destroyed) abort.abort(); // the client left before we were called: 'close' is past
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    if (hasBody) sendContinue(res);
    let upstream;
    try {
      upstream = await this.#pool.request({
        method: req.method ?? 'GET',
        path: req.url ?? '/', // §8: the full original target, prefix included
        headers: endToEnd(req.rawHeaders),
        body: hasBody ? req : null,
        signal: abort.signal,
        responseHeaders: 'raw',
      });
    } catch (err) {
      if (abort.signal.aborted) res.destroy();
      else this.#fail(res, err);
      return;
    }
    const { body } = upstream;
    try {
      // With `responseHeaders: 'raw'` undici hands over a flat latin1 string list (its types
      // do not model that), so header bytes pass through unchanged.
      const raw = upstream.headers as unknown;
      const headers = endToEnd(Array.isArray(raw) ? (raw as string[]) : []);
      res.writeHead(upstream.statusCode, upstream.statusText || undefined, headers);
    } catch {
      // A status or header node:http refuses to emit (out-of-range code, bad bytes).
      body.destroy();
      sendShortAnswer(res, 502, 'Bad Gateway', { close: true });
      return;
    }
    try {
      await pipeline(body, res);
    } catch {
      // Upstream died, body timeout, or client abort: the framing is broken either way.
      res.destroy();
    }
  }

  #fail(res: ServerResponse, err: unknown): void {
    const code = errCode(err);
    if (code !== undefined && TIMEOUT_CODES.has(code)) sendShortAnswer(res, 504, 'Gateway Timeout', { close: true });
    else if (code !== undefined && BAD_REQUEST_CODES.has(code)) sendShortAnswer(res, 400, 'Bad Request', { close: true });
    else sendShortAnswer(res, 502, 'Bad Gateway', { close: true });
  }

  /** Graceful: waits for in-flight upstream requests, then closes the pool's connections. */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** Now: aborts in-flight upstream requests (their clients get 502 or a cut connection). */
  async destroy(): Promise<void> {
    await this.#pool.destroy();
  }
}
