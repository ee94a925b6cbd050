/**
 * A Handler route's request whose body goes to the upload store (gateway/upload-spool.ts,
 * mongrel2-protocol.md §3.4), in Mongrel2's order:
 *
 * 1. the head is read: a temp file is made and `x-mongrel2-upload-start` goes to the handler
 *    with an empty body (its reply sink is registered now: it may answer or cancel at once);
 * 2. the body is written to the file, with backpressure, so memory stays bounded whatever its
 *    size; nothing is sent to the handler meanwhile and no handler timeout runs (the client's
 *    own --request-timeout does);
 * 3. the file closed, `x-mongrel2-upload-done` goes with the same connection id, and the
 *    handler timeout starts as for any request. The handler reads and deletes the file.
 *
 * What stops an upload midway, each time removing the partial file:
 * - the client goes: the handler gets a disconnect notice (§3.6, as Mongrel2 sends);
 * - a chunked body grows past `limits.upload_max`: 413 to the client, disconnect to the handler;
 * - the handler's response is complete first (a 413 and its close message, say): the
 *   connection closes after it, as Mongrel2 closes it (§3.4 "Cancelling");
 * - the disk fails: 500 and a disconnect notice.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WriteStream } from 'node:fs';
import type { Logger } from 'pino';
import { buildHeaders } from '../m2-request-builder.js';
import { sendContinue } from '../expect-continue.js';
import { refuseBody } from '../short-answer.js';
import { removeSpoolFile, uploadHeaders, type SpoolFile, type UploadStore } from '../upload-spool.js';
import type { HeaderMap } from '../../protocol/m2-request.js';
import { HttpRelay } from './http-relay.js';
import type { HandlerTarget } from './handler-target.js';
import { nextConnId } from './reply-dispatch.js';

export interface UploadFlowContext {
  pool: HandlerTarget;
  store: UploadStore;
  timeoutMs: number;
  retryAfterS: number;
  stats: { unavailable: number; tooLarge: number; timedOut: number; clientGone: number };
  failures: { noService: number; tooLarge: number; timeout: number; badReply: number };
  log: Logger | undefined;
}

const EMPTY = Buffer.alloc(0);

/** Serves `req` through the upload store; a declared length over `limits.upload_max` gets 413 before anything is written. */
export function serveUpload(ctx: UploadFlowContext, req: IncomingMessage, res: ServerResponse, pattern: string): void {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > ctx.store.maxBytes) {
    ctx.stats.tooLarge++;
    ctx.failures.tooLarge++;
    return refuseBody(res, 413, 'Entity Too Large');
  }
  ctx.store.create().then(
    (spool) => new UploadFlow(ctx, req, res, pattern, spool),
    (err: unknown) => {
      ctx.log?.error({ err, dir: ctx.store.dir }, 'cannot create an upload temp file');
      refuseBody(res, 500, 'Internal Server Error');
    },
  );
}

type Phase = 'writing' | 'written' | 'over';

class UploadFlow {
  readonly #ctx: UploadFlowContext;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #spool: SpoolFile;
  readonly #connId = nextConnId();
  readonly #relay: HttpRelay;
  readonly #out: WriteStream;
  readonly #fields: { connId: number; path: string; body: Buffer };
  readonly #doneHeaders: HeaderMap;
  #phase: Phase = 'writing';
  #size = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The gateway answered the client itself (413, 500): the response's close is not the client leaving. */
  #answered = false;

  constructor(ctx: UploadFlowContext, req: IncomingMessage, res: ServerResponse, pattern: string, spool: SpoolFile) {
    this.#ctx = ctx;
    this.#req = req;
    this.#res = res;
    this.#spool = spool;
    this.#out = spool.handle.createWriteStream();
    this.#relay = new HttpRelay(res, req.method === 'HEAD', ctx.retryAfterS, {
      onActivity: () => this.#timer?.refresh(),
      onDone: (outcome) => {
        if (outcome === 'bad-reply') ctx.failures.badReply++;
        clearTimeout(this.#timer);
        ctx.pool.release(this.#connId);
        if (this.#phase === 'writing') void this.#cancel();
      },
    });
    const { path, headers } = buildHeaders(req, { pattern, remoteAddr: req.socket.remoteAddress ?? '', scheme: 'http', encoding: ctx.pool.encoding });
    this.#fields = { connId: this.#connId, path, body: EMPTY };
    this.#doneHeaders = uploadHeaders(headers, ctx.pool.encoding, spool.announced, true);
    if (res.destroyed) {
      // The client left while the file was being made: the handler never heard of it.
      this.#phase = 'over';
      this.#out.destroy();
      void this.#remove();
      return;
    }
    res.once('close', () => this.#onClose());
    // Any answer before the whole body is in (the handler's, a 502 or 503) closes the
    // connection after it, rather than node:http reading the rest of a body nobody takes.
    res.setHeader('Connection', 'close');
    const startHeaders = uploadHeaders(headers, ctx.pool.encoding, spool.announced, false);
    if (!ctx.pool.send({ ...this.#fields, headers: startHeaders }, this.#relay)) {
      ctx.stats.unavailable++;
      if (ctx.pool.config.transport !== 'link') ctx.failures.noService++;
      this.#phase = 'over';
      this.#out.destroy();
      void this.#remove();
      this.#relay.abort(503, 'Service Unavailable');
      return;
    }
    sendContinue(res);
    this.#write();
  }

  #write(): void {
    const req = this.#req;
    const out = this.#out;
    const max = this.#ctx.store.maxBytes;
    req.on('data', (chunk: Buffer) => {
      if (this.#phase !== 'writing') return;
      this.#size += chunk.length;
      if (this.#size > max) return this.#tooLarge();
      if (!out.write(chunk)) req.pause();
    });
    out.on('drain', () => req.resume());
    req.once('end', () => {
      if (this.#phase === 'writing') out.end();
    });
    out.once('error', (err) => {
      if (this.#phase !== 'writing') return;
      this.#ctx.log?.error({ err, file: this.#spool.file }, 'writing an upload failed');
      this.#giveUp(500, 'Internal Server Error');
    });
    // 'close' after 'finish': the file is closed before the handler is told it is complete.
    out.once('close', () => {
      if (this.#phase === 'writing' && out.writableFinished) this.#written();
    });
  }

  #written(): void {
    this.#phase = 'written';
    if (!this.#res.headersSent) this.#res.removeHeader('Connection');
    const ctx = this.#ctx;
    this.#timer = setTimeout(() => {
      ctx.stats.timedOut++;
      ctx.failures.timeout++;
      this.#relay.abort(504, 'Gateway Timeout');
      ctx.pool.disconnect(this.#connId);
    }, ctx.timeoutMs);
    if (!ctx.pool.send({ ...this.#fields, headers: this.#doneHeaders }, this.#relay)) {
      clearTimeout(this.#timer);
      ctx.stats.unavailable++;
      if (ctx.pool.config.transport !== 'link') ctx.failures.noService++;
      void this.#remove();
      this.#relay.abort(503, 'Service Unavailable');
    }
  }

  #tooLarge(): void {
    this.#ctx.stats.tooLarge++;
    this.#ctx.failures.tooLarge++;
    this.#giveUp(413, 'Entity Too Large');
  }

  /** The gateway stops the upload and answers the client itself; the handler is told the client left. */
  #giveUp(status: number, text: string): void {
    this.#answered = true;
    refuseBody(this.#res, status, text);
    void this.#cancel().then(() => this.#ctx.pool.disconnect(this.#connId));
  }

  /** Stops writing and removes the partial file (resolved once it is gone). */
  #cancel(): Promise<void> {
    if (this.#phase !== 'writing') return Promise.resolve();
    this.#phase = 'over';
    this.#out.destroy();
    return this.#remove();
  }

  #onClose(): void {
    if (this.#relay.finished || this.#answered) return;
    // The client went away before its reply (§3.6), maybe midway through the body.
    this.#ctx.stats.clientGone++;
    clearTimeout(this.#timer);
    // The handler hears of it once the partial file is gone, so a handler that looks finds nothing half-written.
    void this.#cancel().then(() => this.#ctx.pool.disconnect(this.#connId));
  }

  #remove(): Promise<void> {
    return removeSpoolFile(this.#spool.file).catch((err: unknown) => this.#ctx.log?.warn({ err, file: this.#spool.file }, 'cannot remove a partial upload'));
  }
}
