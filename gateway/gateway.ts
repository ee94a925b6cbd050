/**
 * The standalone gateway: Mongrel2's job done in Node. A node:http server
 * (whose llhttp parser is the security boundary for HTTP) routes each request
 * with Mongrel2's host and route rules to a Handler pool, a Dir or a Proxy
 * target read from mongrel2.conf.
 *
 * Shutdown order (close()): stop accepting; answer new requests on open
 * keep-alive connections 503 with `Connection: close`; wait for in-flight
 * requests up to the drain timeout; cut what is left; close the handler
 * sockets and proxy pools.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Mongrel2Adapter } from './mongrel2-adapter.js';
import { pino, type Logger } from 'pino';
import { settingInt, type ConfigServer, type ConfigTarget, type Mongrel2Config } from '../protocol/mongrel2-conf.js';
import { RouteTable } from './route-table.js';
import { HandlerDispatch, LinkPool, PushSubPool, serviceCall, type CallInit, type CallReply, type HandlerTarget, type LinkOptions } from './handler/index.js';
import type { RouteTarget } from './route-target.js';
import type { CurveConfig } from '../zmq/curve-config.js';
import { startCurveAuthenticator, type ZapAuthenticator } from '../zmq/zap-authenticator.js';
import { DirTarget } from './dir-target.js';
import { ProxyTarget } from './proxy-target.js';
import { checkRequest } from './request-hygiene.js';
import { AppRoutes } from './app.js';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { BRUBECK_SCHEME, BrubeckClients, type BrubeckServiceConfig } from './brubeck-client.js';
import { RETRY_AFTER_DEFAULT_S, sendShortAnswer, shortAnswerBytes } from './short-answer.js';
import { performance } from 'node:perf_hooks';
import type { GatewayMetrics, RefusedCause } from '../admin/gateway-metrics.js';
import { GatewayObserver, type ObservedHandler } from './gateway-observer.js';
import type { AccessLog } from './access-log.js';
import type { GatewayStatus, HandlerStatus, RestartRecord, RouteKind } from '../admin/status.js';
import type { AdminSource, Readiness } from '../admin/admin-server.js';
import { awaitContinue } from './expect-continue.js';
import { UploadStore, uploadStoreConfig } from './upload-spool.js';
import { acceptUpgrade, WebSocketBridge } from './websocket-bridge.js';

export interface GatewayOptions {
  config: Mongrel2Config;
  server: ConfigServer;
  /** Directory that Dir bases are relative to (Mongrel2's working directory). */
  cwd: string;
  /** No reply within this many ms → 504 and a disconnect notice. Defaults to 30,000. */
  handlerTimeoutMs?: number;
  /** How long close() waits for in-flight requests. Defaults to 10,000. */
  drainTimeoutMs?: number;
  /** Overrides the server's port (0 picks a free one) and bind address. */
  port?: number;
  host?: string;
  logger?: Logger;
  /** Serve a real Mongrel2 as its handler (its send_spec and recv_spec) instead of listening for HTTP. */
  mongrel2?: { sendSpec: string; recvSpec: string; uploadStore?: string | undefined };
  /** An app module's default export (see defineApp): routes served in the gateway, matched first. */
  app?: unknown;
  /** A client must send its whole request head within this many ms, else 408. Defaults to 10,000. */
  headersTimeoutMs?: number;
  /** ... and its whole request (head and body) within this many ms, else 408. Defaults to 60,000. */
  requestTimeoutMs?: number;
  /** Heartbeats, queue bound and queue timeout of Handlers with transport='link'. */
  link?: LinkOptions;
  /** CURVE for the handler sockets (both transports): the gateway's key pair and the services' allowed public keys. */
  curve?: CurveConfig | undefined;
  /** Brubeck services app routes reach as `brubeck://NAME/path` (gateway/brubeck-client.ts). */
  brubeck?: readonly BrubeckServiceConfig[];
  /** Retry-After seconds on every 503 the gateway answers itself (draining, no handler, link queue). Defaults to 1. */
  retryAfterSeconds?: number;
  /** Keep metrics and the last-minute windows for an admin listener (admin/). Off by default: then nothing is recorded per request. */
  metrics?: boolean;
  /** One line per answered request (gateway/access-log.ts). Off by default; close() closes it. */
  accessLog?: AccessLog | undefined;
}

/** Each connection's latest response, so that a parse error is answered in order (clientError). */
const LATEST_RESPONSE = Symbol('m2gate.latestResponse');
interface LatestResponse {
  [LATEST_RESPONSE]: ServerResponse;
}

/** What one request's close tells the metrics: filled in as it is routed. */
interface RequestRecord {
  t0: number;
  kind: RouteKind | 'none';
  handler: string | undefined;
}


export interface GatewayStats {
  requests: number;
  rejected: number;
  notFound: number;
  unavailable: number;
  timedOut: number;
  tooLarge: number;
  clientGone: number;
  asyncReplies: number;
  asyncDropped: number;
  asyncErrors: number;
}

export class Gateway {
  readonly log: Logger;
  readonly stats: GatewayStats = { requests: 0, rejected: 0, notFound: 0, unavailable: 0, timedOut: 0, tooLarge: 0, clientGone: 0, asyncReplies: 0, asyncDropped: 0, asyncErrors: 0 };
  readonly pools: HandlerTarget[] = [];
  readonly #opts: GatewayOptions;
  readonly #table: RouteTable<RouteTarget>;
  readonly #proxies: ProxyTarget[] = [];
  readonly #server: Server;
  readonly #timeoutMs: number;
  readonly #retryAfterS: number;
  /** Requests whose response has not closed yet. */
  #inFlight = 0;
  readonly #app: AppRoutes | undefined;
  readonly #hygiene: { maxHeaders: number };
  /** Service calls (ctx.call / ctx.send) still waiting for their reply: close() aborts them. */
  readonly #calls = new Set<AbortController>();
  /** The Brubeck services of options.brubeck. */
  readonly brubeck: BrubeckClients;
  /** Each Handler with the route patterns that reach it. */
  readonly #handlers: ObservedHandler[] = [];
  /** Metrics, windows, refusals and restarts for the admin listener (gateway-observer.ts). */
  readonly #observer: GatewayObserver;
  readonly #metrics: GatewayMetrics | undefined;
  readonly #refused: Record<RefusedCause, number>;
  /** WebSocket connections bridged to Handlers (websocket-bridge.ts). */
  readonly webSockets: WebSocketBridge;
  #adapter: Mongrel2Adapter | undefined;
  readonly #uploads: UploadStore | undefined;
  #zap: ZapAuthenticator | undefined;
  #closing = false;
  #onIdle: (() => void) | undefined;

  constructor(options: GatewayOptions) {
    this.#opts = options;
    this.log = options.logger ?? pino({ base: { component: 'gateway' } });
    this.#timeoutMs = options.handlerTimeoutMs ?? 30_000;
    this.#retryAfterS = options.retryAfterSeconds ?? RETRY_AFTER_DEFAULT_S;
    const uploadConfig = uploadStoreConfig(options.config, options.cwd);
    this.#uploads = uploadConfig && new UploadStore(uploadConfig);
    // Mongrel2 takes WebSocket messages of any size (measured: 64 MiB); m2gate's own setting bounds them.
    this.webSockets = new WebSocketBridge({ maxMessageBytes: settingInt(options.config, 'limits.websocket_message', 1 << 20), timeoutMs: this.#timeoutMs, retryAfterS: this.#retryAfterS, log: this.log });
    const handlerOptions = {
      // §3.3: Mongrel2 inlines bodies up to limits.content_length (default 20480).
      maxBodyBytes: settingInt(options.config, 'limits.content_length', 20_480),
      uploads: this.#uploads,
      timeoutMs: this.#timeoutMs,
      retryAfterS: this.#retryAfterS,
      stats: this.stats,
      log: this.log,
      downloadCredits: settingInt(options.config, 'download.flow_control', 0) !== 0,
      webSockets: this.webSockets,
    };
    const targets = new Map<ConfigTarget, RouteTarget>();
    const poolsBySpec = new Map<string, HandlerDispatch>();
    const targetFor = (t: ConfigTarget): RouteTarget => {
      let target = targets.get(t);
      if (target) return target;
      if (t.kind === 'handler') {
        // Two Handlers with the same endpoints are one (§5.1).
        const key = t.transport === 'link' ? t.sendSpec : `${t.sendSpec} ${t.recvSpec}`;
        let handler = poolsBySpec.get(key);
        if (handler && handler.pool.config.transport !== t.transport) {
          throw new M2gateError(ERROR_CODES.CONFIG, `two Handlers on ${t.sendSpec} use different transports`);
        }
        if (!handler) {
          const pool = t.transport === 'link' ? new LinkPool(t, this.log, options.link, options.curve) : new PushSubPool(t, this.log, options.curve);
          handler = new HandlerDispatch(pool, handlerOptions);
          poolsBySpec.set(key, handler);
          this.#handlers.push({ dispatch: handler, routes: [] });
          this.pools.push(pool);
        }
        target = handler;
      } else if (t.kind === 'dir') {
        target = new DirTarget(t, { cwd: options.cwd, mimetypes: options.config.mimetypes });
      } else {
        const proxy = new ProxyTarget(t);
        this.#proxies.push(proxy);
        target = proxy;
      }
      targets.set(t, target);
      return target;
    };
    const hosts = options.server.hosts.map((h) => ({
      name: h.name,
      matching: h.matching,
      routes: h.routes.map((r) => ({ key: r.path, target: targetFor(r.target) })),
    }));
    this.#table = new RouteTable(hosts, options.server.defaultHost);
    for (const host of hosts) {
      for (const r of host.routes) {
        const entry = this.#handlers.find((h) => h.dispatch === r.target);
        if (entry && !entry.routes.includes(r.key)) entry.routes.push(r.key);
      }
    }
    this.#hygiene = { maxHeaders: settingInt(options.config, 'limits.header_count', 1280) };
    this.brubeck = new BrubeckClients(options.brubeck ?? [], this.log);
    this.#app = options.app === undefined ? undefined : new AppRoutes(options.app, { call: (path, init, async) => this.call(path, init, async), log: this.log.child({ app: true }), stats: this.stats, timeoutMs: this.#timeoutMs });
    this.#server = createServer(
      {
        // Mongrel2 routes requests without Host to the default host (§3.2).
        requireHostHeader: false,
        headersTimeout: options.headersTimeoutMs ?? 10_000,
        requestTimeout: options.requestTimeoutMs ?? 60_000,
        // node checks both deadlines on this tick (default 30 s): a short deadline needs a short tick.
        connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(Math.min(options.headersTimeoutMs ?? 10_000, options.requestTimeoutMs ?? 60_000) / 4))),
        keepAliveTimeout: 5_000,
      },
      (req, res) => this.#onRequest(req, res),
    );
    this.#observer = new GatewayObserver({
      metrics: options.metrics === true,
      handlers: this.#handlers,
      inFlight: () => this.#inFlight,
      requests: () => this.stats.requests,
      readiness: () => this.readiness(),
    });
    this.#metrics = this.#observer.metrics;
    this.#refused = this.#observer.refused;
    if (this.#metrics) this.#server.on('connection', (socket: Duplex) => this.#observer.countBytes(socket));
    // node's own cap drops extra header lines silently (1030 sent, 1023 seen):
    // lift it so request-hygiene counts them and answers 431.
    this.#server.maxHeadersCount = 0;
    // Expect: 100-continue: the target sends the 100 when it reads the body, so that a body it
    // refuses (413) is never asked for (expect-continue.ts). node emits this instead of 'request'.
    this.#server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      awaitContinue(res);
      this.#onRequest(req, res);
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => acceptUpgrade(req, socket, head, (r, res) => this.#onRequest(r, res)));
    this.#server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      // CONNECT has no route here; without a listener node drops the socket silently.
      socket.end(shortAnswerBytes(400, 'Bad Request'));
    });
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      this.stats.rejected++;
      const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      // A client reset is not a refusal (node reports it here too).
      if (err.code !== 'ECONNRESET') this.#refused[status === 408 ? 'request_timeout' : status === 431 ? 'header_count' : 'parse_error']++;
      const text = STATUS_CODES[status]!;
      const refuse = (): void => {
        if (socket.writable && !socket.writableEnded) socket.end(shortAnswerBytes(status, text));
        else socket.destroy();
      };
      // A response may still belong to this connection: a raw answer written now would be read
      // by the client as the answer to that earlier request (a desync). Answer in order.
      const last = (socket as Partial<LatestResponse>)[LATEST_RESPONSE];
      if (last === undefined || last.destroyed || (last.req.complete && last.writableFinished)) return refuse();
      if (!last.req.complete) {
        // The error is in that request's own body (a bad chunk, or the body of a head we
        // already refused): it gets one answer, never two.
        if (!last.headersSent) sendShortAnswer(last, status, text, { close: true });
        else if (!last.writableEnded) last.destroy();
        else if (last.writableFinished) socket.end();
        else last.once('finish', () => socket.end());
        return;
      }
      // A later pipelined request is malformed: the earlier answers go out first.
      last.once('finish', refuse);
    });
  }

  /**
   * Binds the handler endpoints, then the HTTP port, or with `mongrel2` set,
   * connects to a real Mongrel2 as its handler instead of listening.
   * Resolves with the HTTP port (0 behind Mongrel2).
   *
   * @throws what failed to bind or connect (a zeromq error carries the
   *   endpoint as `address`, a listen error `address` and `port`), after
   *   closing everything this call had opened.
   */
  async start(): Promise<number> {
    try {
      return await this.#start();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async #start(): Promise<number> {
    // Before any CURVE server socket binds: without it libzmq refuses every client.
    this.#zap = await startCurveAuthenticator(this.#opts.curve, this.log);
    this.#uploads?.prepare(this.log);
    // Every bind settles before a failure is thrown, so that close() finds no bind in flight.
    const bound = await Promise.allSettled(this.pools.map((p) => p.bind()));
    const failed = bound.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    await this.brubeck.bind();
    if (this.#opts.mongrel2) {
      this.#adapter = new Mongrel2Adapter({
        ...this.#opts.mongrel2,
        accept: (socket) => this.#server.emit('connection', socket),
        webSocket: (req, out) => this.webSockets.relay(req, out, (host, path) => this.#handlerRoute(host, path)),
        logger: this.log.child({ adapter: 'mongrel2' }),
      });
      this.#adapter.start();
      return 0;
    }
    const port = this.#opts.port ?? this.#opts.server.port;
    const host = this.#opts.host ?? this.#opts.server.bindAddr;
    this.#server.listen(port, host);
    await once(this.#server, 'listening');
    const actual = (this.#server.address() as AddressInfo).port;
    this.log.info({ port: actual, host, handlers: this.pools.map((p) => p.config.sendSpec) }, 'gateway listening');
    return actual;
  }

  /** The Handler route a path reaches, if it is one. */
  #handlerRoute(host: string | undefined, path: string): { pool: HandlerTarget; pattern: string } | undefined {
    const match = this.#table.match(host, path);
    return match?.route.target instanceof HandlerDispatch ? { pool: match.route.target.pool, pattern: match.pattern } : undefined;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo | null)?.port ?? 0;
  }

  /** `upload.temp_store`, when set (gateway/upload-spool.ts). */
  get uploads(): UploadStore | undefined {
    return this.#uploads;
  }

  get adapter(): Mongrel2Adapter | undefined {
    return this.#adapter;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  // 'close' comes once per response. One listener shared by every response (no closure per
  // request, and on() spares the wrapper once() binds per call).
  readonly #closed = (): void => {
    if (--this.#inFlight === 0 && this.#onIdle) this.#onIdle();
  };

  #track(req: IncomingMessage, res: ServerResponse): RequestRecord | undefined {
    this.#inFlight++;
    const metrics = this.#metrics;
    const access = this.#opts.accessLog;
    // Only with metrics or an access log on is there anything per request beyond the count.
    if (!metrics && !access) {
      res.on('close', this.#closed);
      return undefined;
    }
    const rec: RequestRecord = { t0: performance.now(), kind: 'none', handler: undefined };
    res.on('close', () => {
      const ms = performance.now() - rec.t0;
      metrics?.requestDone(rec.kind, req.method, res.statusCode, ms / 1000, rec.handler);
      access?.write({ req, res, ms, kind: rec.kind });
      this.#closed();
    });
    return rec;
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.stats.requests++;
    // A property of the connection rather than a WeakMap entry: a plain store per request.
    (req.socket as Partial<LatestResponse>)[LATEST_RESPONSE] = res;
    const rec = this.#track(req, res);
    if (this.#closing) {
      this.stats.unavailable++;
      this.#refused.draining++;
      return sendShortAnswer(res, 503, 'Service Unavailable', { close: true, retryAfterS: this.#retryAfterS });
    }
    const bad = checkRequest(req, this.#hygiene);
    if (bad) {
      this.stats.rejected++;
      this.#refused[bad.status === 431 ? 'header_count' : 'hygiene']++;
      return sendShortAnswer(res, bad.status, bad.message, { close: true });
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (this.#app?.handle(req, res, path)) {
      if (rec) rec.kind = 'app';
      return;
    }
    const host = req.headers.host;
    const match = this.#table.match(host, path);
    if (!match) {
      this.stats.notFound++;
      this.#refused.not_found++;
      // Mongrel2's unmatched-route 404 closes the connection (§6.2).
      return sendShortAnswer(res, 404, 'Not Found', { close: true });
    }
    const { target } = match.route;
    if (rec) {
      rec.kind = target.kind;
      if (target instanceof HandlerDispatch) rec.handler = target.pool.config.sendSpec;
    }
    void target.serve(req, res, { prefix: match.prefix, pattern: match.pattern, path });
  }

  /**
   * A service call through the gateway's own route table (the default host):
   * `path` must be served by a Handler route. While holdForStart is on and no
   * service is connected, it first waits for one (its timeout starts once sent).
   *
   * @throws M2gateError M2G_ERR_NO_ROUTE (404) and whatever serviceCall throws;
   *   a call still waiting when close() has drained fails with M2G_ERR_CALL_ABORTED.
   */
  call(path: string, init: CallInit = {}, async = false): Promise<CallReply> {
    // A Brubeck service (not the route table): its client aborts what waits when it closes.
    if (path.startsWith(BRUBECK_SCHEME)) return this.brubeck.call(path, init, this.#timeoutMs, async);
    const q = path.indexOf('?');
    const match = this.#table.match(undefined, q < 0 ? path : path.slice(0, q));
    const target = match?.route.target;
    if (match === undefined || !(target instanceof HandlerDispatch)) {
      return Promise.reject(new M2gateError(ERROR_CODES.NO_ROUTE, `no Handler route serves ${path}`));
    }
    // A call nobody waits for (ctx.send) must not outlive the gateway: its timer
    // would keep the process up to the handler timeout after close().
    const stop = new AbortController();
    const signal = init.signal ? AbortSignal.any([init.signal, stop.signal]) : stop.signal;
    this.#calls.add(stop);
    // While the start command's own service is starting, the call waits for it as a routed
    // request does (holdForStart), instead of failing NO_HANDLER merely for coming too early.
    const call = target.whenServable(signal).then(() => serviceCall({ pool: target.pool, pattern: match.pattern }, path, { ...init, signal }, this.#timeoutMs));
    const forget = (): void => void this.#calls.delete(stop);
    call.then(forget, forget);
    return call;
  }

  /**
   * The start command supervises the services of `pool`: from now on, a
   * request to it finding no service waits up to `ms` for one instead of
   * 503 (HandlerDispatch.holdForStart).
   */
  holdForStart(pool: HandlerTarget, ms: number): void {
    this.#handlers.find((h) => h.dispatch.pool === pool)?.dispatch.holdForStart(ms);
  }

  /** A supervised service died (the start command): shown on the dashboard. */
  recordRestart(record: RestartRecord): void {
    this.#observer.recordRestart(record);
  }

  /** Ready: not draining, and every Handler has at least one service that can take requests. */
  readiness(): Readiness {
    const reasons: string[] = [];
    if (this.#closing) reasons.push('draining');
    else if (!this.#server.listening && !this.#adapter) reasons.push('not listening');
    for (const { dispatch } of this.#handlers) {
      if (!dispatch.pool.hasPeers) reasons.push(`no service connected to Handler ${dispatch.pool.config.sendSpec}`);
    }
    return { ready: reasons.length === 0, reasons };
  }

  handlerStatus(): HandlerStatus[] {
    return this.#observer.handlerStatus();
  }

  /** /status.json (admin/status.ts). Needs `metrics` on for the windows; zeros otherwise. */
  status(): GatewayStatus {
    return this.#observer.status();
  }

  /** What the admin listener serves for this gateway. @throws Error without `metrics` on. */
  adminSource(): AdminSource {
    return this.#observer.adminSource();
  }

  /** Graceful stop (see the shutdown order above). Resolves true if everything drained in time. */
  async close(): Promise<boolean> {
    if (this.#closing) return true;
    this.#closing = true;
    const closed = this.#server.listening ? new Promise<void>((resolve) => this.#server.close(() => resolve())) : Promise.resolve();
    this.#server.closeIdleConnections();
    // Logged after the listener is closed, so a reader of this line can rely on it.
    this.log.info({ inFlight: this.#inFlight }, 'gateway stopped accepting');
    // Open WebSockets would hold the drain to its timeout: they get close 1001 now.
    this.webSockets.close();
    let drained = this.#inFlight === 0;
    if (!drained) {
      drained = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), this.#opts.drainTimeoutMs ?? 10_000);
        this.#onIdle = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
    }
    this.#server.closeAllConnections();
    await this.#adapter?.close();
    await closed;
    // Before the pools close, so that the handlers get their disconnect notices (§3.6).
    for (const stop of this.#calls) stop.abort();
    await this.brubeck.close();
    await Promise.all([...this.pools.map((p) => p.close()), ...this.#proxies.map((p) => p.close())]);
    await this.#zap?.close();
    await this.#opts.accessLog?.close();
    this.log.info({ drained, stats: this.stats }, 'gateway stopped');
    return drained;
  }
}
