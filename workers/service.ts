/**
 * The service process: a Mongrel2 handler (PULL from the front's send_spec,
 * PUB to its recv_spec) whose routes run on a piscina pool of worker threads.
 *
 * Rules it keeps: every request received gets exactly one reply (the route's,
 * or 400/404/405/500/503/504), in request order per connection (Mongrel2
 * forwards pipelined requests at once with one id: §4.4), followed by the close
 * message after HTTP/1.0 or `Connection: close` requests, because Mongrel2 never
 * closes on its own. A disconnect notice aborts the connection's work and
 * suppresses its replies.
 *
 * This file is one request's life on the main thread (receive, route, dispatch,
 * answer, log) and the start/stop order; the parts it composes have their own
 * homes: service-options.ts (checks, defaults), endpoint-probe.ts,
 * thread-pool.ts (piscina), abort-protocol.ts with abort-main.ts and
 * abort-worker.ts (the cooperative abort), connection-order.ts (reply order),
 * credit.ts (link credit), in-flight.ts (the drain), mongrel2-front.ts and
 * link-front.ts (the sockets).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { parseRequest, type M2Request } from '../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../protocol/m2-reply.js';
import { ProtocolError } from '../protocol/errors.js';
import { makeFront } from './service-front.js';
import { MultiLinkFront } from './multi-link-front.js';
import { readGatewayList } from './gateway-list.js';
import { compileMethodRoutes, matchMethodRoute, type MethodRoute } from '../protocol/method-router.js';
import { textResponse } from './result.js';
import { InFlight } from './in-flight.js';
import { CreditLedger, type CreditHolder } from './credit.js';
import { ConnectionOrder, wantsClose, type Ordered } from './connection-order.js';
import { TaskAborts, type AbortableTask } from './abort-main.js';
import { checkEndpoints } from './endpoint-probe.js';
import { resolveServiceOptions, type ResolvedServiceOptions, type ServiceOptions } from './service-options.js';
import { ownBytes, type RunResult, type RunTask } from './task.js';
import { ThreadPool } from './thread-pool.js';
import { ServiceMetrics } from '../admin/service-metrics.js';
import { PacedFront } from './paced-reply.js';
import { creditsOf } from '../protocol/download-credits.js';
import { WsRoutes, wsRouteInfo, type WsRouteInfo } from './ws-routes.js';
import type { AdminSource, Readiness } from '../admin/admin-server.js';
import { intakeUpload, refusedAtStart, removeUpload, UploadStoreReader, type UploadIntake } from './upload-body.js';

export type { ServiceOptions } from './service-options.js';

export interface ServiceStats {
  received: number;
  replied: number;
  malformed: number;
  aborted: number;
  timedOut: number;
  rejected503: number;
  errors500: number;
  /** Results that came back after their request was answered or abandoned. */
  lateResults: number;
  ignored: number;
}

interface Pending extends AbortableTask, Ordered, CreditHolder {
  key: string;
  req: M2Request;
  /** The message `req` was parsed from: what the worker thread gets. */
  frame: Buffer;
  route: MethodRoute | undefined;
  close: boolean;
  head: boolean;
  enqueuedAt: number;
  /** Set once the answer is decided; sent when every earlier request on the connection is. */
  reply?: Buffer;
  status?: number;
  /** The client went away: nothing is sent. */
  abandoned: boolean;
  /** Counted in #live. */
  live?: boolean;
  timer?: NodeJS.Timeout;
  /** An upload-done's temp file (removed once answered), or why it is refused (upload-body.ts). */
  upload?: UploadIntake;
}

const now = (): number => performance.timeOrigin + performance.now();

export class Service {
  readonly stats: ServiceStats = {
    received: 0,
    replied: 0,
    malformed: 0,
    aborted: 0,
    timedOut: 0,
    rejected503: 0,
    errors500: 0,
    lateResults: 0,
    ignored: 0,
  };
  readonly log: Logger;
  readonly #opts: ResolvedServiceOptions;
  readonly #expectEncoding: 'json' | 'tnetstring' | undefined;
  #warnedEncoding = false;
  #pool!: ThreadPool;
  #routes: MethodRoute[] = [];
  /** Each route's own timeout (by route index), when it sets one. */
  #routeTimeouts: Array<number | undefined> = [];
  #routeUploads: boolean[] = [];
  readonly #uploads: UploadStoreReader | undefined;
  /** The `'WS /path'` routes (ws-routes.ts). */
  #ws!: WsRoutes;
  #wsInfo = new Map<number, WsRouteInfo>();
  #front!: PacedFront;
  /** start() has set up the pool and the front. */
  #running = false;
  #credit!: CreditLedger;
  #aborts!: TaskAborts<Pending>;
  /** Dispatched tasks someone still waits for: the queue limit counts these. */
  #live = 0;
  #nextId = 1;
  readonly #order = new ConnectionOrder<Pending>({ deliver: (p) => this.#deliver(p), discard: (p) => this.#drop(p) });
  readonly #inFlight = new InFlight<Pending>();
  #closing = false;
  /** The drain has ended: whatever arrives now gets 503. */
  #drained = false;
  readonly #metrics: ServiceMetrics | undefined;
  readonly #linkName: string;
  readonly #logRequests: boolean;

  constructor(options: ServiceOptions) {
    this.#opts = resolveServiceOptions(options);
    this.log = options.logger ?? pino({ base: { component: 'service' } });
    this.#expectEncoding = options.expectEncoding;
    this.#logRequests = options.logRequests ?? false;
    this.#linkName = options.senderId ?? `${hostname()}/${process.pid}`;
    this.#uploads = this.#opts.uploadStore === undefined ? undefined : new UploadStoreReader(this.#opts.uploadStore);
    this.#metrics = options.metrics
      ? new ServiceMetrics({
          stats: this.stats,
          liveTasks: () => this.#live,
          queuedTasks: () => (this.#running ? this.#pool.queueSize : 0),
          threads: () => (this.#running ? this.#pool.threads : 0),
          utilization: () => (this.#running ? this.#pool.utilization : 0),
          workerRestarts: () => (this.#running ? this.#pool.restarts : 0),
          threadHops: () => (this.#running ? this.#pool.batchStats : { single: 0, batches: 0, batchedTasks: 0 }),
        })
      : undefined;
  }

  /** /readyz: started, not draining, and the front delivering requests. */
  readiness(): Readiness {
    const reasons: string[] = [];
    if (this.#closing) reasons.push('draining');
    if (!this.#running) reasons.push('starting');
    else {
      const why = this.#front.notReady?.();
      if (why !== undefined) reasons.push(why);
    }
    return { ready: reasons.length === 0, reasons };
  }

  /** What the service's admin listener serves. */
  adminSource(): AdminSource {
    const metrics = this.#metrics;
    if (!metrics) throw new Error('the admin listener needs a service made with { metrics: true }');
    return { metrics: () => metrics.metrics(), readiness: () => this.readiness() };
  }

  get workers(): number {
    return this.#opts.workers;
  }

  /** Requests received and not yet answered or abandoned. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * Loads the routes module in every worker thread (failing fast if it cannot
   * be loaded), then connects to the front.
   *
   * @throws Error when an endpoint is not one zeromq accepts, or the routes
   *   module fails to load or is malformed.
   */
  async start(): Promise<void> {
    const { workers, maxQueue } = this.#opts;
    const { send, recv, link } = this.#opts;
    const gateways = link ? readGatewayList(this.#opts.connect, this.#opts.connectFile) : [];
    checkEndpoints([...send, ...recv]);
    // Abandoned tasks keep their slot until piscina hands them back, so there
    // are twice as many slots as live tasks can ever need.
    const slots = 2 * (workers + maxQueue);
    this.#aborts = new TaskAborts(slots, this.#opts.abortGraceMs, (p, thread) => this.#terminate(p, thread));
    const wsChannel = `m2gate-ws-${randomUUID()}`;
    ({ pool: this.#pool, routes: this.#routes } = await ThreadPool.start(
      { routesModule: this.#opts.routesModule, workers, maxHeapMb: this.#opts.maxHeapMb, batchMs: this.#opts.batchMs, abort: this.#aborts.shared, wsChannel, log: this.log },
      (routes) => {
        this.#routeTimeouts = routes.map((r) => r.timeoutMs);
        this.#routeUploads = routes.map((r) => r.uploads);
        this.#wsInfo = wsRouteInfo(routes);
        return compileMethodRoutes(routes);
      },
    ));
    const wsDeps = { routes: this.#routes, wsRoutes: this.#wsInfo, timeoutMs: this.#opts.timeoutMs, channel: wsChannel, log: this.log };
    this.#ws = new WsRoutes({ ...wsDeps, run: (task) => this.#pool.runWs(task), send: (m, credit, origin) => this.#front.send(m, credit, origin), refund: (n, origin) => this.#front.giveBack(n, origin) });

    this.#front = new PacedFront(makeFront(this.#opts, gateways, this.#linkName, this.log, this.#metrics), { stallMs: this.#opts.timeoutMs, log: this.log });
    this.#credit = new CreditLedger(this.#front);
    this.#front.connect({
      onMessage: (frame, charged, origin = 0) => this.#onMessage(frame, charged, origin),
      onLost: (origin) => {
        const before = this.#inFlight.size;
        for (const key of this.#order.keys()) if (origin === undefined || key.startsWith(`${origin}\0`)) this.#abandon(key);
        this.#ws.lost(origin);
        const held = before - this.#inFlight.size;
        // Their replies could reach nobody, or a client of a new front that reuses the ids.
        if (held > 0) this.log.warn({ abandoned: held }, 'the front went away: the requests it sent are forgotten');
      },
    });
    this.#running = true;
    this.log.info({ routes: this.#routes.map((r) => r.pattern), workers, batchMs: this.#opts.batchMs, senderId: this.#opts.senderId }, 'service started');
  }

  /**
   * Over several gateways (multi-link-front.ts): re-reads --connect-file and joins or leaves
   * gateways accordingly. Returns the new list; undefined when the front is not such a one.
   *
   * @throws M2gateError when the file cannot be read or names a bad endpoint (nothing changes).
   */
  reloadGateways(): string[] | undefined {
    const links = this.#front.inner;
    if (!(links instanceof MultiLinkFront) || this.#closing) return undefined;
    links.reload(readGatewayList(this.#opts.connect, this.#opts.connectFile));
    return links.endpoints;
  }

  #onMessage(frame: Buffer, charged: boolean, origin: number): void {
    if (!this.#accept(frame, charged, origin)) this.#credit.refundMessage(charged, origin);
  }

  /** Returns true when the message became a request that will be answered (and return its credit). */
  #accept(frame: Buffer, charged: boolean, origin: number): boolean {
    let req: M2Request;
    try {
      req = parseRequest(frame);
    } catch (err) {
      this.stats.malformed++;
      const offset = err instanceof ProtocolError ? err.offset : undefined;
      this.log.warn({ err: (err as Error).message, offset, bytes: frame.length, malformed: this.stats.malformed }, 'malformed message skipped');
      return false;
    }
    if (this.#expectEncoding !== undefined && req.encoding !== this.#expectEncoding && !this.#warnedEncoding) {
      this.#warnedEncoding = true;
      this.log.warn({ expected: this.#expectEncoding, got: req.encoding }, 'the front sends another header encoding than --protocol says');
    }
    switch (req.kind) {
      case 'disconnect':
        this.#abandon(`${origin}\0${req.sender}\0${req.connId}`);
        this.#front.forget(req.sender, req.connId, origin);
        this.#ws.gone(req.sender, req.connId, origin);
        return false;
      case 'credits':
        if (!this.#front.grant(req.sender, req.connId, creditsOf(req) ?? 0, origin)) this.stats.ignored++;
        return false;
      case 'websocket-handshake':
      case 'websocket':
        // Its own rules (ws-routes.ts), which return a handshake's credit with its answer.
        return this.#ws.onMessage(req, charged, origin);
      case 'http':
      case 'upload-done':
        break;
      case 'upload-start':
        // The body arrives with upload-done (§3.4): answer that one, unless it would be refused.
        if (!refusedAtStart(this.#uploads, this.#routes, this.#routeUploads, String(req.headers.METHOD), req.path)) return false;
        break;
      case 'json':
      case 'xml':
        // Routes answer HTTP; a JSON/XML socket (§3.8) would wait for an answer until Mongrel2
        // reaps it, so it is closed at once instead (the close message, §4.3).
        this.stats.ignored++;
        this.log.info({ kind: req.kind, path: req.path, connId: req.connId }, 'JSON/XML socket message refused: connection closed');
        this.#front.send(encodeClose(req.sender, req.connId), 0, origin);
        return false;
      default:
        this.stats.ignored++;
        this.log.debug({ kind: req.kind, connId: req.connId }, 'message kind not served');
        return false;
    }
    this.stats.received++;
    const downloadCredits = creditsOf(req);
    if (downloadCredits !== undefined) this.#front.announce(req.sender, req.connId, downloadCredits, origin);
    // Per gateway: connection ids are only unique within one (multi-link-front.ts).
    const key = `${origin}\0${req.sender}\0${req.connId}`;
    const method = typeof req.headers.METHOD === 'string' ? req.headers.METHOD : 'GET';
    const p: Pending = {
      id: this.#nextId++,
      slot: -1,
      key,
      req,
      frame,
      route: undefined,
      close: req.kind === 'upload-start' || wantsClose(req),
      head: method === 'HEAD',
      enqueuedAt: now(),
      abandoned: false,
      charged: false,
      origin,
    };
    if (req.kind === 'upload-done') p.upload = intakeUpload(this.#uploads, req, this.log);
    this.#credit.hold(p, charged);
    this.#inFlight.add(p);
    this.#order.add(p);

    this.#route(p, method);
    return true;
  }

  #route(p: Pending, method: string): void {
    // A link REQUEST that arrives while draining was sent before the gateway saw BYE: serve it, the drain waits for it.
    if (this.#drained || (this.#closing && !p.charged)) return this.#answer(p, 503, 'Service Unavailable\n', { 'Retry-After': String(this.#opts.retryAfterSeconds) });
    if (p.upload?.ok === false) return this.#answer(p, p.upload.status, p.upload.text);
    const found = matchMethodRoute(this.#routes, method, p.req.path);
    if (found.badEncoding) return this.#answer(p, 400, 'Bad Request\n');
    if (!found.route) {
      if (found.allow?.join() === 'WS') return this.#answer(p, 426, 'Upgrade Required\n', { Upgrade: 'websocket' });
      if (found.allow) return this.#answer(p, 405, 'Method Not Allowed\n', { Allow: found.allow.join(', ') });
      return this.#answer(p, 404, 'Not Found\n');
    }
    p.route = found.route;
    if (p.req.kind === 'upload-start' || (p.upload?.ok === true && !this.#routeUploads[found.index!])) return this.#answer(p, 413, 'Request Entity Too Large\n');
    if (this.#live >= this.#opts.workers + this.#opts.maxQueue || !this.#aborts.hasFreeSlot) {
      this.stats.rejected503++;
      return this.#answer(p, 503, 'Service Unavailable\n', { 'Retry-After': String(this.#opts.retryAfterSeconds) });
    }
    this.#dispatch(p, found.index!, found.params!);
  }

  #dispatch(p: Pending, route: number, params: Record<string, string>): void {
    this.#aborts.claim(p);
    p.live = true;
    this.#live++;
    const task: RunTask = { kind: 'run', id: p.id, slot: p.slot, route, params, frame: ownBytes(p.frame), head: p.head, upload: p.upload?.ok === true ? p.upload.file : undefined };
    const timeoutMs = this.#routeTimeouts[route] ?? this.#opts.timeoutMs;
    p.timer = setTimeout(() => {
      this.stats.timedOut++;
      this.#unlive(p);
      this.#answer(p, 504, 'Gateway Timeout\n');
      this.#aborts.abort(p);
    }, timeoutMs);
    // No AbortSignal for piscina (abort-protocol.ts says why): abort-main.ts aborts it.
    this.#pool.run(task).then(
      (result) => this.#onResult(p, result),
      (err: unknown) => this.#onFailure(p, err),
    );
  }

  #onResult(p: Pending, result: RunResult): void {
    this.#release(p);
    if (p.reply !== undefined || p.abandoned || result.aborted) {
      this.stats.lateResults++;
      return;
    }
    if (result.errorId !== undefined) {
      this.stats.errors500++;
      this.log.error({ errorId: result.errorId, route: p.route?.pattern, connId: p.req.connId, err: result.error }, 'route handler threw');
    }
    p.status = result.status;
    this.#logRequest(p, result.startedAt - p.enqueuedAt);
    p.reply = Buffer.from(result.reply.buffer, result.reply.byteOffset, result.reply.byteLength);
    this.#order.flush(p.key);
  }

  #onFailure(p: Pending, err: unknown): void {
    this.#release(p);
    if (p.reply !== undefined || p.abandoned) return;
    // The worker thread died under this task (uncaught error, process.exit,
    // out of memory); piscina replaces the thread.
    const errorId = randomUUID();
    this.stats.errors500++;
    this.log.error({ errorId, route: p.route?.pattern, connId: p.req.connId, err }, 'worker failed while running the task');
    this.#answer(p, 500, `Internal Server Error (error id ${errorId})\n`);
  }

  /** The task no longer counts against the queue limit: it settled, or nobody waits for it. */
  #unlive(p: Pending): void {
    if (!p.live) return;
    p.live = false;
    this.#live--;
  }

  #release(p: Pending): void {
    this.#unlive(p);
    clearTimeout(p.timer);
    this.#aborts.release(p);
  }

  /** The aborted task's handler ignored its signal past the grace period (abort-protocol.ts, step 5). */
  #terminate(p: Pending, thread: number): void {
    if (!this.#pool.terminateThread(thread)) return;
    this.log.warn({ route: p.route?.pattern, connId: p.req.connId, thread, graceMs: this.#opts.abortGraceMs }, 'aborted task ignored its signal: terminating its thread');
  }

  #answer(p: Pending, status: number, text: string, headers: Record<string, string> = {}): void {
    if (p.reply !== undefined || p.abandoned) return;
    p.status = status;
    p.reply = encodeReply(p.req.sender, p.req.connId, textResponse(status, text, headers, p.head));
    this.#logRequest(p, 0);
    this.#order.flush(p.key);
  }

  #logRequest(p: Pending, waitMs: number): void {
    const ms = now() - p.enqueuedAt;
    this.#metrics?.taskDone(p.route?.pattern ?? 'unrouted', ms / 1000);
    if (!this.#logRequests) return;
    this.log.info(
      { route: p.route?.pattern ?? null, method: p.req.headers.METHOD, path: p.req.path, status: p.status, ms: round(ms), waitMs: round(Math.max(0, waitMs)), connId: p.req.connId },
      'request',
    );
  }

  /** The request's turn in its connection's order: its reply goes out. */
  #deliver(p: Pending): void {
    this.#inFlight.settle(p);
    this.#credit.reply(p, p.reply!);
    this.stats.replied++;
    removeUpload(p.upload, this.log);
    if (p.close) this.#front.send(encodeClose(p.req.sender, p.req.connId), 0, p.origin);
  }

  #drop(p: Pending): void {
    this.#credit.refund(p);
    p.abandoned = true;
    removeUpload(p.upload, this.log);
    this.#unlive(p);
    this.#inFlight.settle(p);
    this.#aborts.abort(p);
  }

  /** The client went away (§3.6): abort its work, send nothing. */
  #abandon(key: string): void {
    const queue = this.#order.take(key);
    if (!queue) return;
    for (const p of queue) {
      this.stats.aborted++;
      this.#drop(p);
    }
  }

  /**
   * Graceful stop: stop pulling requests, let in-flight ones finish within the
   * drain timeout (answering the rest 503), flush replies, close the sockets and
   * the pool. Resolves true when everything finished in time.
   */
  async close(): Promise<boolean> {
    if (this.#closing) return true;
    this.#closing = true;
    await this.#front.stopTaking();
    const drained = await this.#inFlight.waitIdle(this.#opts.drainTimeoutMs);
    this.#drained = true;
    for (const p of this.#inFlight.snapshot()) {
      this.#answer(p, 503, 'Service Unavailable\n', { 'Retry-After': String(this.#opts.retryAfterSeconds) });
      this.#aborts.abort(p);
    }
    this.#ws.close();
    await this.#front.close();
    this.#aborts.close();
    const hops = this.#pool.batchStats;
    await this.#pool.destroy();
    this.log.info({ drained, stats: this.stats, hops }, 'service stopped');
    return drained;
  }
}

const round = (ms: number): number => Math.round(ms * 100) / 100;
