/**
 * A Handler route: the request's body collected, sent to the Handler's pool
 * as a Mongrel2 message, and the reply relayed, with the decisions that are
 * the gateway's rather than the pool's:
 *
 * - no handler connected → 503 at once (Mongrel2 holds the client ~2 minutes);
 * - a body over `limits.content_length` → 413 and close (§3.3: Mongrel2 would
 *   spool it to its upload store, which the gateway does not have), after
 *   reading the rest of the body, so that the close is not a reset (refuseBody);
 * - no reply message within the handler timeout → 504 plus a disconnect
 *   notice (an idle deadline: each reply message restarts it);
 * - the client gone before its reply → a disconnect notice (§3.6).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { buildHeaders } from '../m2-request-builder.js';
import type { RouteHit, RouteTarget } from '../route-target.js';
import { sendContinue } from '../expect-continue.js';
import { refuseBody, sendShortAnswer } from '../short-answer.js';
import { HttpRelay } from './http-relay.js';
import type { HandlerTarget } from './handler-target.js';
import { nextConnId } from './reply-dispatch.js';

export interface HandlerDispatchOptions {
  /** Body bytes a request may carry: Mongrel2's `limits.content_length`. */
  maxBodyBytes: number;
  /** No reply message for this many ms → 504 and a disconnect notice. */
  timeoutMs: number;
  /** Retry-After seconds of the 503s. */
  retryAfterS: number;
  /** The gateway's counters, shared by all its routes. */
  stats: HandlerDispatchStats;
}

export interface HandlerDispatchStats {
  unavailable: number;
  tooLarge: number;
  timedOut: number;
  clientGone: number;
}

export class HandlerDispatch implements RouteTarget {
  readonly pool: HandlerTarget;
  readonly #opts: HandlerDispatchOptions;

  constructor(pool: HandlerTarget, options: HandlerDispatchOptions) {
    this.pool = pool;
    this.#opts = options;
  }

  serve(req: IncomingMessage, res: ServerResponse, hit: RouteHit): void {
    const { stats, maxBodyBytes } = this.#opts;
    if (!this.pool.hasPeers) {
      stats.unavailable++;
      return sendShortAnswer(res, 503, 'Service Unavailable', { retryAfterS: this.#opts.retryAfterS });
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBodyBytes) {
      stats.tooLarge++;
      return refuseBody(res, 413, 'Entity Too Large');
    }
    sendContinue(res);
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
          refuseBody(res, 413, 'Entity Too Large');
        }
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge || res.writableEnded || res.destroyed) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      this.#send(req, res, hit.pattern, body);
    });
  }

  #send(req: IncomingMessage, res: ServerResponse, pattern: string, body: Buffer): void {
    const { pool } = this;
    const { stats } = this.#opts;
    const connId = nextConnId();
    const { path, headers } = buildHeaders(req, { pattern, remoteAddr: req.socket.remoteAddress ?? '', scheme: 'http', encoding: pool.encoding });
    // An idle deadline: each reply message restarts it, so a long stream lives
    // as long as the handler keeps sending.
    const timer = setTimeout(() => {
      stats.timedOut++;
      relay.abort(504, 'Gateway Timeout');
      pool.disconnect(connId);
    }, this.#opts.timeoutMs);
    const relay = new HttpRelay(res, req.method === 'HEAD', this.#opts.retryAfterS, {
      onActivity: () => timer.refresh(),
      onDone: () => {
        clearTimeout(timer);
        pool.release(connId);
      },
    });
    res.once('close', () => {
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
      relay.abort(503, 'Service Unavailable');
    }
  }
}
