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
import type { Front } from './front.js';
import { LinkFront } from './link-front.js';
import { Mongrel2Front } from './mongrel2-front.js';
import { BrubeckFront } from './brubeck-front.js';
import { compileMethodRoutes, matchMethodRoute, type MethodRoute } from '../protocol/method-router.js';
import { textResponse } from './result.js';
import { InFlight } from './in-flight.js';
import { CreditLedger, type CreditHolder } from './credit.js';
import { ConnectionOrder, wantsClose, type Ordered } from './connection-order.js';
import { TaskAborts, type AbortableTask } from './abort-main.js';
import { checkEndpoints } from './endpoint-probe.js';
import { resolveServiceOptions, type ResolvedServiceOptions, type ServiceOptions } from './service-options.js';
import type { RunResult, RunTask } from './task.js';
import { ThreadPool } from './thread-pool.js';
import { ServiceMetrics } from '../admin/service-metrics.js';
import { WsRoutes, wsRouteInfo, type WsRouteInfo } from './ws-routes.js';
import type { AdminSource, Readiness } from '../admin/admin-server.js';

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
  /** The `'WS /path'` routes (ws-routes.ts). */
  #ws!: WsRoutes;
  #wsInfo = new Map<number, WsRouteInfo>();
  #front!: Front;
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
  readonly #metrics: ServiceMetrics | undefined;
  readonly #linkName: string;
  readonly #logRequests: boolean;

  constructor(options: ServiceOptions) {
    this.#opts = resolveServiceOptions(options);
    this.log = options.logger ?? pino({ base: { component: 'service' } });
    this.#expectEncoding = options.expectEncoding;
    this.#logRequests = options.logRequests ?? false;
    this.#linkName = options.senderId ?? `${hostname()}/${process.pid}`;
    this.#metrics = options.metrics
      ? new ServiceMetrics({
          stats: this.stats,
          liveTasks: () => this.#live,
          queuedTasks: () => (this.#running ? this.#pool.queueSize : 0),
          threads: () => (this.#running ? this.#pool.threads : 0),
          utilization: () => (this.#running ? this.#pool.utilization : 0),
          workerRestarts: () => (this.#running ? this.#pool.restarts : 0),
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
    const { send, recv, connect } = this.#opts;
    checkEndpoints(connect === undefined ? [...send, ...recv] : [connect]);
    // Abandoned tasks keep their slot until piscina hands them back, so there
    // are twice as many slots as live tasks can ever need.
    const slots = 2 * (workers + maxQueue);
    this.#aborts = new TaskAborts(slots, this.#opts.abortGraceMs, (p, thread) => this.#terminate(p, thread));
    const wsChannel = `m2gate-ws-${randomUUID()}`;
    ({ pool: this.#pool, routes: this.#routes } = await ThreadPool.start(
      { routesModule: this.#opts.routesModule, workers, maxQueue: slots, maxHeapMb: this.#opts.maxHeapMb, abort: this.#aborts.shared, wsChannel, log: this.log },
      (routes) => {
        this.#routeTimeouts = routes.map((r) => r.timeoutMs);
        this.#wsInfo = wsRouteInfo(routes);
        return compileMethodRoutes(routes);
      },
    ));
    const wsDeps = { routes: this.#routes, wsRoutes: this.#wsInfo, timeoutMs: this.#opts.timeoutMs, channel: wsChannel, log: this.log };
    this.#ws = new WsRoutes({ ...wsDeps, run: (task) => this.#pool.runWs(task), send: (m, credit) => this.#front.send(m, credit ?? 0), refund: (n) => this.#front.giveBack(n) });

    this.#front =
      this.#opts.brubeck !== undefined
        ? new BrubeckFront(this.#opts.brubeck, this.log)
        : connect === undefined
        ? new Mongrel2Front(send, recv, this.log, this.#opts.curve)
        : new LinkFront({
            endpoint: connect,
            credit: this.#opts.credit,
            threads: workers,
            // The gateway's logs and dashboard name the service by this.
            name: this.#linkName,
            heartbeatMs: this.#opts.heartbeatMs,
            liveness: this.#opts.liveness,
            curve: this.#opts.curve,
            log: this.log,
            report: this.#metrics && (async () => Buffer.from(JSON.stringify(await this.#metrics!.registry.getMetricsAsJSON()))),
          });
    this.#credit = new CreditLedger(this.#front);
    this.#front.connect({
      onMessage: (frame, charged) => this.#onMessage(frame, charged),
      onLost: () => {
        const held = this.#inFlight.size;
        for (const key of this.#order.keys()) this.#abandon(key);
        // Their replies could reach nobody, or a client of a new front that reuses the ids.
        if (held > 0) this.log.warn({ abandoned: held }, 'the front went away: the requests it sent are forgotten');
      },
    });
    this.#running = true;
    this.log.info({ routes: this.#routes.map((r) => r.pattern), workers, senderId: this.#opts.senderId }, 'service started');
  }

  #onMessage(frame: Buffer, charged: boolean): void {
    if (!this.#accept(frame, charged)) this.#credit.refundMessage(charged);
  }

  /** Returns true when the message became a request that will be answered (and return its credit). */
  #accept(frame: Buffer, charged: boolean): boolean {
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
        this.#abandon(`${req.sender}\0${req.connId}`);
        this.#ws.gone(`${req.sender}\0${req.connId}`);
        return false;
      case 'websocket-handshake':
      case 'websocket':
        // Its own rules (ws-routes.ts), which return a handshake's credit with its answer.
        return this.#ws.onMessage(req, charged);
      case 'http':
      case 'upload-done':
        break;
      case 'upload-start':
        // The body arrives with upload-done (§3.4); answer that one.
        return false;
      default:
        this.stats.ignored++;
        this.log.debug({ kind: req.kind, connId: req.connId }, 'message kind not served');
        return false;
    }
    this.stats.received++;
    const key = `${req.sender}\0${req.connId}`;
    const method = typeof req.headers.METHOD === 'string' ? req.headers.METHOD : 'GET';
    const p: Pending = {
      id: this.#nextId++,
      slot: -1,
      key,
      req,
      route: undefined,
      close: wantsClose(req),
      head: method === 'HEAD',
      enqueuedAt: now(),
      abandoned: false,
      charged: false,
    };
    this.#credit.hold(p, charged);
    this.#inFlight.add(p);
    this.#order.add(p);

    this.#route(p, method);
    return true;
  }

  #route(p: Pending, method: string): void {
    if (this.#closing) return this.#answer(p, 503, 'Service Unavailable\n', { 'Retry-After': String(this.#opts.retryAfterSeconds) });
    if (p.req.kind === 'upload-done') return this.#answer(p, 413, 'Request Entity Too Large\n');
    const found = matchMethodRoute(this.#routes, method, p.req.path);
    if (found.badEncoding) return this.#answer(p, 400, 'Bad Request\n');
    if (!found.route) {
      if (found.allow?.join() === 'WS') return this.#answer(p, 426, 'Upgrade Required\n', { Upgrade: 'websocket' });
      if (found.allow) return this.#answer(p, 405, 'Method Not Allowed\n', { Allow: found.allow.join(', ') });
      return this.#answer(p, 404, 'Not Found\n');
    }
    p.route = found.route;
    if (this.#live >= this.#opts.workers + this.#opts.maxQueue || !this.#aborts.hasFreeSlot) {
      this.stats.rejected503++;
      return this.#answer(p, 503, 'Service Unavailable\n', { 'Retry-After': String(this.#opts.retryAfterSeconds) });
    }
    this.#dispatch(p, found.index!, found.params!, method);
  }

  #dispatch(p: Pending, route: number, params: Record<string, string>, method: string): void {
    this.#aborts.claim(p);
    p.live = true;
    this.#live++;
    const { req } = p;
    const task: RunTask = {
      kind: 'run',
      id: p.id,
      slot: p.slot,
      route,
      method,
      path: req.path,
      params,
      headers: req.headers,
      body: req.body,
      connId: req.connId,
      sender: req.sender,
      head: p.head,
    };
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
    if (p.close) this.#front.send(encodeClose(p.req.sender, p.req.connId), 0);
  }

  #drop(p: Pending): void {
    this.#credit.refund(p);
    p.abandoned = true;
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
    this.#front.stopTaking();
    const drained = await this.#inFlight.waitIdle(this.#opts.drainTimeoutMs);
    for (const p of this.#inFlight.snapshot()) {
      this.#answer(p, 503, 'Service Unavailable\n', { 'Retry-After': String(this.#opts.retryAfterSeconds) });
      this.#aborts.abort(p);
    }
    this.#ws.close();
    await this.#front.close();
    this.#aborts.close();
    await this.#pool.destroy();
    this.log.info({ drained, stats: this.stats }, 'service stopped');
    return drained;
  }
}

const round = (ms: number): number => Math.round(ms * 100) / 100;
