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
 */
import { randomUUID } from 'node:crypto';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { BroadcastChannel } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { Publisher } from 'zeromq';
import { pino, type Logger } from 'pino';
import { parseRequest, type M2Request } from '../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../protocol/m2-reply.js';
import { ERROR_CODES, M2gateError, ProtocolError } from '../protocol/errors.js';
import type { Front } from './front.js';
import { LinkFront } from './link-front.js';
import { Mongrel2Front } from './mongrel2-front.js';
import type { CurveConfig } from '../zmq/curve-config.js';
import { compileRoutes, lookupRoute, type CompiledRoute } from './routes.js';
import { textResponse } from './result.js';
import type { DescribeResult, RunResult, RunTask, WorkerConfig, WorkerTask } from './task.js';

export interface ServiceOptions {
  /** file: URL or path of the compiled routes module. Defaults to the built-in demo routes. */
  routesModule?: string;
  /** The front's send_spec endpoints (PULL connects to each). Not with `connect`. */
  send?: string[];
  /** The front's recv_spec endpoints (PUB connects to each). Not with `connect`. */
  recv?: string[];
  /** The m2gate link instead: the gateway's ROUTER endpoint (a link Handler's send_spec). */
  connect?: string;
  /** Link: requests held at once, announced to the gateway. Defaults to 32 per thread: with less, trivial routes cost up to 1.5x the CPU per request of PUSH/SUB (measured: the pool idles between credit round trips); the gateway balances by measured speed, not by filling credit. */
  credit?: number;
  /** Link heartbeat interval in ms. Defaults to 1,000. */
  heartbeatMs?: number;
  /** Link: silent heartbeat intervals before the gateway counts as lost. Defaults to 3. */
  liveness?: number;
  /** Worker threads. Defaults to the number of cores. */
  workers?: number;
  /** Names this service process in its logs (the sender_id of classic Mongrel2 handlers). Defaults to a random UUID. */
  senderId?: string;
  /** The Handler's header encoding; both are parsed, a mismatch is logged once. */
  expectEncoding?: 'json' | 'tnetstring' | undefined;
  /** Service-wide task timeout in ms (routes may override). Defaults to 30,000. */
  timeoutMs?: number;
  /** Requests that may wait for a thread before 503 (abandoned ones do not count). Defaults to 128 per thread, at least 256. */
  maxQueue?: number;
  /** How long SIGTERM waits for in-flight requests, in ms. Defaults to 10,000. */
  drainTimeoutMs?: number;
  /** After an abort, how long a running handler may take to notice before its thread is terminated. Defaults to 1,000. */
  abortGraceMs?: number;
  /** Seconds for 503's Retry-After. Defaults to 1. */
  retryAfterSeconds?: number;
  /** Heap limit of each worker thread in MiB: a route that exceeds it gets 500 and its thread is replaced. Defaults to Node's own limit. */
  maxHeapMb?: number | undefined;
  /** CURVE client keys for the sockets to the front (this service's pair and the front's public key). */
  curve?: CurveConfig | undefined;
  logger?: Logger;
}

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

interface Pending {
  id: number;
  slot: number;
  key: string;
  req: M2Request;
  route: CompiledRoute | undefined;
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
  /** Used a link credit not yet returned. */
  charged: boolean;
  timer?: NodeJS.Timeout;
  hardAbort?: NodeJS.Timeout;
}

const now = (): number => performance.timeOrigin + performance.now();

function defaultRoutesModule(): string {
  const ext = extname(fileURLToPath(import.meta.url));
  return new URL(`./demo-routes${ext}`, import.meta.url).href;
}

function wantsClose(req: M2Request): boolean {
  const conn = req.headers.connection;
  const value = (Array.isArray(conn) ? conn.join(',') : (conn ?? '')).toLowerCase();
  if (value.includes('close')) return true;
  return req.headers.VERSION === 'HTTP/1.0' && !value.includes('keep-alive');
}

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
  readonly #opts: Required<Omit<ServiceOptions, 'logger' | 'routesModule' | 'senderId' | 'expectEncoding' | 'connect' | 'send' | 'recv' | 'maxHeapMb' | 'curve'>> & {
    curve: CurveConfig | undefined;
    maxHeapMb: number | undefined;
    routesModule: string;
    senderId: string;
    send: string[];
    recv: string[];
    connect: string | undefined;
  };
  readonly #expectEncoding: 'json' | 'tnetstring' | undefined;
  #warnedEncoding = false;
  #pool!: Piscina<WorkerTask, RunResult | DescribeResult>;
  #routes: CompiledRoute[] = [];
  #front!: Front;
  #channel!: BroadcastChannel;
  #flags!: Int32Array;
  #runningOn!: Int32Array;
  #freeSlots: number[] = [];
  /** Dispatched tasks someone still waits for: the queue limit counts these. */
  #live = 0;
  #nextId = 1;
  #connections = new Map<string, Pending[]>();
  #inFlight = new Set<Pending>();
  #closing = false;
  #onIdle: (() => void) | undefined;

  constructor(options: ServiceOptions) {
    const workers = options.workers ?? availableParallelism();
    if (!(Number.isInteger(workers) && workers >= 1)) throw new Error('workers must be a positive integer');
    const send = options.send ?? [];
    const recv = options.recv ?? [];
    if (options.connect !== undefined) {
      if (send.length > 0 || recv.length > 0) throw new Error('connect (the m2gate link) and send/recv (Mongrel2) exclude each other');
    } else if (send.length === 0 || recv.length === 0) {
      throw new Error('at least one send and one recv endpoint are needed (or connect, for the m2gate link)');
    }
    if (options.curve !== undefined && options.curve.serverKey === undefined) {
      throw new M2gateError(ERROR_CODES.CONFIG, "CURVE is on but the front's public key is missing (--curve-server-key / M2GATE_CURVE_SERVER_KEY)");
    }
    const credit = options.credit ?? 32 * workers;
    if (!(Number.isInteger(credit) && credit >= 1 && credit <= 999_999)) throw new Error('credit must be an integer from 1 to 999999');
    this.#opts = {
      routesModule: options.routesModule ?? defaultRoutesModule(),
      send,
      recv,
      connect: options.connect,
      credit,
      heartbeatMs: options.heartbeatMs ?? 1000,
      liveness: options.liveness ?? 3,
      workers,
      senderId: options.senderId ?? randomUUID(),
      timeoutMs: options.timeoutMs ?? 30_000,
      maxQueue: options.maxQueue ?? Math.max(256, workers * 128),
      drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
      abortGraceMs: options.abortGraceMs ?? 1_000,
      retryAfterSeconds: options.retryAfterSeconds ?? 1,
      maxHeapMb: options.maxHeapMb,
      curve: options.curve,
    };
    this.log = options.logger ?? pino({ base: { component: 'service' } });
    this.#expectEncoding = options.expectEncoding;
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
    const abortFlags = new SharedArrayBuffer(slots * 4);
    this.#flags = new Int32Array(abortFlags);
    const runningOn = new SharedArrayBuffer(slots * 4);
    this.#runningOn = new Int32Array(runningOn);
    this.#freeSlots = Array.from({ length: slots }, (_, i) => slots - 1 - i);
    const abortChannel = `m2gate-abort-${process.pid}-${randomUUID()}`;
    this.#channel = new BroadcastChannel(abortChannel);
    this.#channel.unref();
    const workerData: WorkerConfig = { routesModule: this.#opts.routesModule, abortFlags, runningOn, abortChannel };
    const ext = extname(fileURLToPath(import.meta.url));
    this.#pool = new Piscina({
      filename: new URL(`./worker-entry${ext}`, import.meta.url).href,
      minThreads: workers,
      maxThreads: workers,
      // The limit users set is enforced on live tasks (#live): piscina's queue
      // also holds abandoned tasks until a thread reaches them, and counting
      // those answered 503 with fewer live requests than --max-queue (measured).
      maxQueue: slots,
      // With the default (false) some tasks starved under sustained load here (DESIGN.md).
      stricterFIFO: true,
      idleTimeout: Number.POSITIVE_INFINITY,
      ...(this.#opts.maxHeapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: this.#opts.maxHeapMb } }),
      workerData,
    });
    // Some worker failures arrive here rather than as a rejected task.
    this.#pool.on('error', (err: unknown) => this.log.error({ err }, 'worker pool error'));

    // One describe per thread, all at once (idle threads take one task each):
    // every thread loads the routes module before the first request, and when
    // loading fails every thread has finished booting before the pool is
    // destroyed. Terminating a thread while piscina still require()s its entry
    // file aborted the whole process (FATAL ERROR in loadESMFromCJS, exit 134;
    // measured about 1 in 40 failed starts with --workers 2 on Node 20).
    const described = await Promise.allSettled(Array.from({ length: workers }, () => this.#pool.run({ kind: 'describe' })));
    try {
      const failed = described.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      this.#routes = compileRoutes(((described[0] as PromiseFulfilledResult<DescribeResult>).value).routes);
    } catch (err) {
      await this.#pool.destroy();
      // The error crossed from the worker thread without Node's source excerpt:
      // keep at least its kind ("SyntaxError: Unexpected token ';'").
      const { name, message } = err as Error;
      const why = name && name !== 'Error' ? `${name}: ${message}` : message;
      throw new Error(`cannot load routes module ${this.#opts.routesModule}: ${why}`, { cause: err });
    }

    this.#front =
      connect === undefined
        ? new Mongrel2Front(send, recv, this.log, this.#opts.curve)
        : new LinkFront({
            endpoint: connect,
            credit: this.#opts.credit,
            threads: workers,
            name: this.#opts.senderId,
            heartbeatMs: this.#opts.heartbeatMs,
            liveness: this.#opts.liveness,
            curve: this.#opts.curve,
            log: this.log,
          });
    this.#front.connect({
      onMessage: (frame, charged) => this.#onMessage(frame, charged),
      onLost: () => {
        const held = this.#inFlight.size;
        for (const key of [...this.#connections.keys()]) this.#abandon(key);
        // Their replies could reach nobody, or a client of a new front that reuses the ids.
        if (held > 0) this.log.warn({ abandoned: held }, 'the front went away: the requests it sent are forgotten');
      },
    });
    this.log.info({ routes: this.#routes.map((r) => r.pattern), workers, senderId: this.#opts.senderId }, 'service started');
  }

  #onMessage(frame: Buffer, charged: boolean): void {
    if (!this.#accept(frame, charged) && charged) this.#front.giveBack(1);
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
        return false;
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
      charged,
    };
    this.#inFlight.add(p);
    let queue = this.#connections.get(key);
    if (!queue) this.#connections.set(key, (queue = []));
    queue.push(p);

    this.#route(p, method);
    return true;
  }

  #route(p: Pending, method: string): void {
    if (this.#closing) return this.#answer(p, 503, 'Service Unavailable\n', { 'Retry-After': String(this.#opts.retryAfterSeconds) });
    if (p.req.kind === 'upload-done') return this.#answer(p, 413, 'Request Entity Too Large\n');
    const found = lookupRoute(this.#routes, method, p.req.path);
    if (found.badEncoding) return this.#answer(p, 400, 'Bad Request\n');
    if (!found.route) {
      if (found.allow) return this.#answer(p, 405, 'Method Not Allowed\n', { Allow: found.allow.join(', ') });
      return this.#answer(p, 404, 'Not Found\n');
    }
    p.route = found.route;
    if (this.#live >= this.#opts.workers + this.#opts.maxQueue || this.#freeSlots.length === 0) {
      this.stats.rejected503++;
      return this.#answer(p, 503, 'Service Unavailable\n', { 'Retry-After': String(this.#opts.retryAfterSeconds) });
    }
    this.#dispatch(p, found.index!, found.params!, method);
  }

  #dispatch(p: Pending, route: number, params: Record<string, string>, method: string): void {
    p.slot = this.#freeSlots.pop()!;
    p.live = true;
    this.#live++;
    Atomics.store(this.#flags, p.slot, 0);
    Atomics.store(this.#runningOn, p.slot, 0);
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
    const timeoutMs = p.route?.timeoutMs ?? this.#opts.timeoutMs;
    p.timer = setTimeout(() => {
      this.stats.timedOut++;
      this.#unlive(p);
      this.#answer(p, 504, 'Gateway Timeout\n');
      this.#abortTask(p);
    }, timeoutMs);
    // No AbortSignal: piscina queues tasks that carry one in a separate list
    // that it serves newest-first when stricterFIFO is set (measured: 5 queued
    // tasks ran 5,4,3,2,1), so the oldest requests would starve. An aborted task
    // that is still queued returns at once when it starts (abortFlags); a running
    // one that ignores its signal loses its thread (#terminate).
    this.#pool.run(task).then(
      (result) => this.#onResult(p, result as RunResult),
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
    this.#flush(p.key);
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
    clearTimeout(p.hardAbort);
    if (p.slot >= 0) {
      this.#freeSlots.push(p.slot);
      p.slot = -1;
    }
  }

  /** Cooperative abort at once (the handler's signal), thread termination after the grace period. */
  #abortTask(p: Pending): void {
    if (p.slot < 0) return;
    Atomics.store(this.#flags, p.slot, p.id);
    this.#channel.postMessage(p.id);
    p.hardAbort = setTimeout(() => this.#terminate(p), this.#opts.abortGraceMs);
  }

  /**
   * Ends the thread still running an aborted task; piscina then fails the task
   * ("worker exited") and starts a replacement. The slot is still this task's:
   * #release clears this timer when the result arrives, and piscina gives the
   * thread no other task before that result is processed here.
   */
  #terminate(p: Pending): void {
    if (p.slot < 0) return;
    const thread = Atomics.load(this.#runningOn, p.slot);
    if (thread === 0) return; // still queued: it returns at once when it starts
    const worker = this.#pool.threads.find((w) => w.threadId === thread);
    if (!worker) return;
    this.log.warn({ route: p.route?.pattern, connId: p.req.connId, thread, graceMs: this.#opts.abortGraceMs }, 'aborted task ignored its signal: terminating its thread');
    void worker.terminate();
  }

  #answer(p: Pending, status: number, text: string, headers: Record<string, string> = {}): void {
    if (p.reply !== undefined || p.abandoned) return;
    p.status = status;
    p.reply = encodeReply(p.req.sender, p.req.connId, textResponse(status, text, headers, p.head));
    this.#logRequest(p, 0);
    this.#flush(p.key);
  }

  #logRequest(p: Pending, waitMs: number): void {
    const ms = now() - p.enqueuedAt;
    this.log.info(
      { route: p.route?.pattern ?? null, method: p.req.headers.METHOD, path: p.req.path, status: p.status, ms: round(ms), waitMs: round(Math.max(0, waitMs)), connId: p.req.connId },
      'request',
    );
  }

  /** Sends decided replies in request order for one connection. */
  #flush(key: string): void {
    const queue = this.#connections.get(key);
    if (!queue) return;
    while (queue.length > 0 && queue[0]!.reply !== undefined) {
      const p = queue.shift()!;
      this.#settled(p);
      this.#front.send(p.reply!, p.charged ? 1 : 0);
      p.charged = false;
      this.stats.replied++;
      if (p.close) {
        this.#front.send(encodeClose(p.req.sender, p.req.connId), 0);
        // Later pipelined requests on a closed connection can never be answered.
        for (const rest of queue.splice(0)) this.#drop(rest);
      }
    }
    if (queue.length === 0) this.#connections.delete(key);
  }

  #drop(p: Pending): void {
    if (p.charged) {
      p.charged = false;
      this.#front.giveBack(1);
    }
    p.abandoned = true;
    this.#unlive(p);
    this.#settled(p);
    this.#abortTask(p);
  }

  /** The client went away (§3.6): abort its work, send nothing. */
  #abandon(key: string): void {
    const queue = this.#connections.get(key);
    if (!queue) return;
    this.#connections.delete(key);
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
    const drained = await this.#waitIdle(this.#opts.drainTimeoutMs);
    for (const p of [...this.#inFlight]) {
      this.#answer(p, 503, 'Service Unavailable\n', { 'Retry-After': String(this.#opts.retryAfterSeconds) });
      this.#abortTask(p);
    }
    await this.#front.close();
    this.#channel.close();
    await this.#pool.destroy();
    this.log.info({ drained, stats: this.stats }, 'service stopped');
    return drained;
  }

  #waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.#inFlight.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  #settled(p: Pending): void {
    this.#inFlight.delete(p);
    if (this.#inFlight.size === 0 && this.#onIdle) {
      const onIdle = this.#onIdle;
      this.#onIdle = undefined;
      onIdle();
    }
  }
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

/**
 * zeromq checks an endpoint only when a socket connects to it, and the PULL
 * connects later, in a callback, where a typo would crash the process (or, for
 * the PUB, leave it hanging with the pool up). So every endpoint is tried at
 * start on a throwaway PUB, a socket that never takes a message: against the
 * front's PUSH the handshake fails, to its SUB it sends nothing.
 *
 * @throws Error naming the endpoint zeromq rejects.
 */
function checkEndpoints(specs: readonly string[]): void {
  const probe = new Publisher({ linger: 0 });
  try {
    for (const spec of specs) {
      try {
        probe.connect(spec);
      } catch (err) {
        throw new Error(`invalid endpoint '${spec}': ${(err as Error).message}`, { cause: err });
      }
    }
  } finally {
    probe.close();
  }
}
