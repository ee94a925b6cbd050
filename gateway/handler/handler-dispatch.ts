/**
 * A Handler route: the request's body collected, sent to the Handler's pool
 * as a Mongrel2 message, and the reply relayed, with the decisions that are
 * the gateway's rather than the pool's:
 *
 * - no handler connected → 503 at once (Mongrel2 holds the client ~2 minutes);
 * - a body over `limits.content_length` (or any chunked body) with an upload
 *   store configured → written there and announced as Mongrel2 does
 *   (upload-flow.ts, §3.4); without one → 413 and close (§3.3), after
 *   reading the rest of the body, so that the close is not a reset (refuseBody);
 * - no reply message within the handler timeout → 504 plus a disconnect
 *   notice (an idle deadline: each reply message restarts it);
 * - the client gone before its reply → a disconnect notice (§3.6);
 * - while the start command's own services are (re)starting (holdForStart),
 *   a request with no service to go to waits (bounded) for one instead of
 *   503; so does a service call from an app route (whenServable).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ERROR_CODES } from '../../protocol/errors.js';
import { buildHeaders } from '../m2-request-builder.js';
import type { RouteHit, RouteTarget } from '../route-target.js';
import { sendContinue } from '../expect-continue.js';
import { refuseBody, sendShortAnswer } from '../short-answer.js';
import { HttpRelay } from './http-relay.js';
import type { HandlerTarget } from './handler-target.js';
import { nextConnId } from './reply-dispatch.js';
import { CreditReturn } from './download-credits.js';
import { withDownloadCredits } from '../../protocol/download-credits.js';
import type { UploadStore } from '../upload-spool.js';
import { serveUpload } from './upload-flow.js';
import { dispatchNow, readingBody } from '../dispatch-order.js';
import { isUpgradeRequest, isWebSocketUpgrade, type WebSocketBridge } from '../websocket-bridge.js';

const EMPTY = Buffer.alloc(0);

export interface HandlerDispatchOptions {
  /** Body bytes a request may carry: Mongrel2's `limits.content_length`. */
  maxBodyBytes: number;
  /** No reply message for this many ms → 504 and a disconnect notice. */
  timeoutMs: number;
  /** Retry-After seconds of the 503s. */
  retryAfterS: number;
  /** The gateway's counters, shared by all its routes. */
  stats: HandlerDispatchStats;
  /** Where a 502 for a malformed handler reply is logged with its reason. */
  log: Logger;
  /** The server's `download.flow_control=1`: announce and return download credits (§3.7). */
  downloadCredits?: boolean;
  /** `upload.temp_store`: where bodies over maxBodyBytes go (upload-flow.ts). */
  uploads?: UploadStore | undefined;
  /** Bridges WebSocket upgrades (gateway/websocket-bridge.ts); without it they get 501. */
  webSockets?: WebSocketBridge;
}

export interface HandlerDispatchStats {
  unavailable: number;
  tooLarge: number;
  timedOut: number;
  clientGone: number;
}

/** Why the gateway answered a request of this Handler itself (read by /metrics and the dashboard). */
export interface HandlerFailures {
  /** 503: no service connected (or, over PUSH/SUB, its send queue full). */
  noService: number;
  /** 413: a body over limits.content_length. */
  tooLarge: number;
  /** 504: no reply message within the handler timeout. */
  timeout: number;
  /** 502: the handler's reply was not valid HTTP. */
  badReply: number;
}

export class HandlerDispatch implements RouteTarget {
  readonly kind = 'handler';
  readonly pool: HandlerTarget;
  readonly failures: HandlerFailures = { noService: 0, tooLarge: 0, timeout: 0, badReply: 0 };
  readonly #opts: HandlerDispatchOptions;
  /** When > 0, how long a request finding no service waits for one: see holdForStart. */
  #holdMs = 0;

  constructor(pool: HandlerTarget, options: HandlerDispatchOptions) {
    this.pool = pool;
    this.#opts = options;
  }

  /**
   * The start command supervises this Handler's services: from now on, a
   * request finding no service waits up to `ms` for one rather than getting
   * 503 merely because it came while one was starting or restarting. A
   * standing hold, not a window from now: the gateway can see a service's
   * connection drop before its supervisor sees it die and starts the next
   * one, and a request in between must wait too. The latest `ms` applies
   * (the start command passes the next restart's backoff plus start time).
   */
  holdForStart(ms: number): void {
    this.#holdMs = Math.max(0, ms);
  }

  /**
   * Resolves once a request to this Handler can be sent: at once when a
   * service is connected or no hold is on; otherwise when one connects, the
   * hold's wait is over or `signal` aborts, whichever comes first. Service calls from
   * app routes (Gateway.call) wait on this, as routed requests do in serve().
   */
  whenServable(signal?: AbortSignal): Promise<void> {
    const waitMs = this.#holdMs;
    if (this.pool.hasPeers || waitMs <= 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      signal?.addEventListener('abort', done, { once: true });
      void this.pool.whenPeer().then(done);
    });
  }

  serve(req: IncomingMessage, res: ServerResponse, hit: RouteHit): void {
    if (!this.pool.hasPeers) {
      if (this.#holdMs > 0) return this.#serveWhenPeer(req, res, hit);
      return this.#noService(res);
    }
    this.#accept(req, res, hit);
  }

  #noService(res: ServerResponse): void {
    this.#opts.stats.unavailable++;
    this.failures.noService++;
    sendShortAnswer(res, 503, 'Service Unavailable', { retryAfterS: this.#opts.retryAfterS });
  }

  /** A service is there: read the body (or refuse it) and send the request. */
  #accept(req: IncomingMessage, res: ServerResponse, hit: RouteHit): void {
    const { stats, maxBodyBytes } = this.#opts;
    if (isUpgradeRequest(req) && isWebSocketUpgrade(req)) return this.#webSocket(req, res, hit);
    const declared = req.headers['content-length'];
    const { uploads } = this.#opts;
    // Mongrel2 spools every chunked body too (§3.3): its length is not known when the head is.
    if (uploads?.usable === true && (declared === undefined ? req.headers['transfer-encoding'] !== undefined : Number(declared) > maxBodyBytes)) {
      const { timeoutMs, retryAfterS, log } = this.#opts;
      return serveUpload({ pool: this.pool, store: uploads, timeoutMs, retryAfterS, stats, failures: this.failures, log }, req, res, hit.pattern);
    }
    if (declared !== undefined && Number(declared) > maxBodyBytes) {
      stats.tooLarge++;
      this.failures.tooLarge++;
      return refuseBody(res, 413, 'Entity Too Large');
    }
    sendContinue(res);
    if (dispatchNow(req)) return this.#send(req, res, hit.pattern, EMPTY);
    const dispatched = readingBody(req, res);
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBodyBytes) {
        // A chunked body that grows past the limit.
        if (!tooLarge) {
          tooLarge = true;
          stats.tooLarge++;
          this.failures.tooLarge++;
          refuseBody(res, 413, 'Entity Too Large');
        }
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      dispatched();
      if (tooLarge || res.writableEnded || res.destroyed) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      this.#send(req, res, hit.pattern, body);
    });
  }

  #webSocket(req: IncomingMessage, res: ServerResponse, hit: RouteHit): void {
    const bridge = this.#opts.webSockets;
    if (bridge === undefined) return sendShortAnswer(res, 501, 'Not Implemented', { close: true });
    if (!bridge.open(this.pool, req, res, hit)) {
      this.#opts.stats.unavailable++;
      this.failures.noService++;
      sendShortAnswer(res, 503, 'Service Unavailable', { close: true, retryAfterS: this.#opts.retryAfterS });
    }
  }

  #send(req: IncomingMessage, res: ServerResponse, pattern: string, body: Buffer): void {
    const { pool } = this;
    const { stats } = this.#opts;
    const connId = nextConnId();
    const built = buildHeaders(req, { pattern, remoteAddr: req.socket.remoteAddress ?? '', scheme: 'http', encoding: pool.encoding });
    const { path } = built;
    // Every request has a connection id of its own here, so each is a connection's first.
    const credits = this.#opts.downloadCredits ? new CreditReturn(res, (bytes) => pool.credits(connId, bytes)) : undefined;
    const headers = credits ? withDownloadCredits(built.headers, pool.encoding) : built.headers;
    // An idle deadline: each reply message restarts it, so a long stream lives
    // as long as the handler keeps sending.
    const timer = setTimeout(() => {
      stats.timedOut++;
      this.failures.timeout++;
      relay.abort(504, 'Gateway Timeout');
      pool.disconnect(connId);
    }, this.#opts.timeoutMs);
    const relay = new HttpRelay(res, req.method === 'HEAD', this.#opts.retryAfterS, {
      onActivity: () => timer.refresh(),
      onWritten: credits && ((bytes) => credits.written(bytes)),
      onDone: (outcome, reason) => {
        if (outcome === 'bad-reply') {
          this.failures.badReply++;
          // The client sees only "502 Bad Gateway": the handler's author needs the why.
          this.#opts.log.warn({ code: ERROR_CODES.BAD_REPLY, handler: pool.config.sendSpec, connId, path, err: reason instanceof Error ? reason.message : String(reason) }, 'bad reply from the handler: 502');
        }
        clearTimeout(timer);
        pool.release(connId);
      },
    });
    res.on('close', () => {
      if (!relay.finished) {
        // The client went away before its reply (§3.6).
        stats.clientGone++;
        clearTimeout(timer);
        pool.disconnect(connId);
      }
    });
    if (!pool.send({ connId, path, headers, body }, relay)) {
      clearTimeout(timer);
      stats.unavailable++;
      // Over the link a refusal is the scheduler's (full queue), counted there.
      if (pool.config.transport !== 'link') this.failures.noService++;
      relay.abort(503, 'Service Unavailable');
    }
  }

  /** The start hold: waits (bounded, whenServable) for a service, then serves, or 503 if none came. The body stays unread in the socket meanwhile. */
  #serveWhenPeer(req: IncomingMessage, res: ServerResponse, hit: RouteHit): void {
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    void this.whenServable(gone.signal).then(() => {
      if (gone.signal.aborted) return;
      if (this.pool.hasPeers) this.#accept(req, res, hit);
      else this.#noService(res);
    });
  }
}
