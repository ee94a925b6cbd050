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
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Mongrel2Adapter } from './mongrel2-adapter.js';
import { pino, type Logger } from 'pino';
import { settingInt, type ConfigServer, type ConfigTarget, type Mongrel2Config } from '../protocol/mongrel2-conf.js';
import { RouteTable } from './route-table.js';
import { HandlerPool, nextConnId, type HandlerTarget } from './handler-pool.js';
import { LinkPool, type LinkOptions } from './link-pool.js';
import type { CurveConfig } from '../transport/curve-config.js';
import { startCurveAuthenticator, type ZapAuthenticator } from '../transport/zap-authenticator.js';
import { HttpRelay } from './http-relay.js';
import { DirTarget } from './dir-target.js';
import { ProxyTarget } from './proxy-target.js';
import { buildHeaders } from './m2-request-builder.js';
import { checkRequest } from './request-hygiene.js';
import { AppRoutes } from './app.js';
import { serviceCall, type CallInit, type CallReply } from './service-call.js';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';

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
  mongrel2?: { sendSpec: string; recvSpec: string };
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

type Target = { kind: 'handler'; pool: HandlerTarget } | { kind: 'dir'; dir: DirTarget } | { kind: 'proxy'; proxy: ProxyTarget };

function plain(res: ServerResponse, status: number, message: string, extra: Record<string, string | number> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(message);
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': body.length, ...extra });
  res.end(body);
}

export class Gateway {
  readonly log: Logger;
  readonly stats: GatewayStats = { requests: 0, rejected: 0, notFound: 0, unavailable: 0, timedOut: 0, tooLarge: 0, clientGone: 0, asyncReplies: 0, asyncDropped: 0, asyncErrors: 0 };
  readonly pools: HandlerTarget[] = [];
  readonly #opts: GatewayOptions;
  readonly #table: RouteTable<Target>;
  readonly #proxies: ProxyTarget[] = [];
  readonly #server: Server;
  readonly #maxBody: number;
  readonly #timeoutMs: number;
  readonly #inFlight = new Set<ServerResponse>();
  /** Each connection's latest response, so that a parse error is answered in order (clientError). */
  readonly #lastResponse = new WeakMap<object, ServerResponse>();
  readonly #app: AppRoutes | undefined;
  readonly #hygiene: { maxHeaders: number };
  /** Service calls (ctx.call / ctx.send) still waiting for their reply: close() aborts them. */
  readonly #calls = new Set<AbortController>();
  #adapter: Mongrel2Adapter | undefined;
  #zap: ZapAuthenticator | undefined;
  #closing = false;
  #onIdle: (() => void) | undefined;

  constructor(options: GatewayOptions) {
    this.#opts = options;
    this.log = options.logger ?? pino({ base: { component: 'gateway' } });
    this.#timeoutMs = options.handlerTimeoutMs ?? 30_000;
    // §3.3: Mongrel2 inlines bodies up to limits.content_length (default 20480).
    this.#maxBody = settingInt(options.config, 'limits.content_length', 20_480);
    const targets = new Map<ConfigTarget, Target>();
    const poolsBySpec = new Map<string, HandlerTarget>();
    const targetFor = (t: ConfigTarget): Target => {
      let target = targets.get(t);
      if (target) return target;
      if (t.kind === 'handler') {
        // Two Handlers with the same endpoints are one (§5.1).
        const key = t.transport === 'link' ? t.sendSpec : `${t.sendSpec} ${t.recvSpec}`;
        let pool = poolsBySpec.get(key);
        if (pool && pool.config.transport !== t.transport) {
          throw new M2gateError(ERROR_CODES.CONFIG, `two Handlers on ${t.sendSpec} use different transports`);
        }
        if (!pool) {
          pool = t.transport === 'link' ? new LinkPool(t, this.log, options.link, options.curve) : new HandlerPool(t, this.log, options.curve);
          poolsBySpec.set(key, pool);
          this.pools.push(pool);
        }
        target = { kind: 'handler', pool };
      } else if (t.kind === 'dir') {
        target = { kind: 'dir', dir: new DirTarget(t, { cwd: options.cwd, mimetypes: options.config.mimetypes }) };
      } else {
        const proxy = new ProxyTarget(t);
        this.#proxies.push(proxy);
        target = { kind: 'proxy', proxy };
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
    this.#hygiene = { maxHeaders: settingInt(options.config, 'limits.header_count', 1280) };
    this.#app = options.app === undefined ? undefined : new AppRoutes(options.app, { call: (path, init) => this.call(path, init), log: this.log.child({ app: true }), stats: this.stats, timeoutMs: this.#timeoutMs });
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
    // node's own cap drops extra header lines silently (1030 sent, 1023 seen):
    // lift it so request-hygiene counts them and answers 431.
    this.#server.maxHeadersCount = 0;
    this.#server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      // CONNECT has no route here; without a listener node drops the socket silently.
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 11\r\n\r\nBad Request');
    });
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      this.stats.rejected++;
      const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      const refuse = (): void => {
        if (socket.writable && !socket.writableEnded) socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        else socket.destroy();
      };
      // A response may still belong to this connection: a raw answer written now would be read
      // by the client as the answer to that earlier request (a desync). Answer in order.
      const last = this.#lastResponse.get(socket);
      if (last === undefined || last.destroyed || (last.req.complete && last.writableFinished)) return refuse();
      if (!last.req.complete) {
        // The error is in that request's own body (a bad chunk, or the body of a head we
        // already refused): it gets one answer, never two.
        if (!last.headersSent) plain(last, Number(status.slice(0, 3)), status.slice(4), { Connection: 'close' });
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
    // Every bind settles before a failure is thrown, so that close() finds no bind in flight.
    const bound = await Promise.allSettled(this.pools.map((p) => p.bind()));
    const failed = bound.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (this.#opts.mongrel2) {
      this.#adapter = new Mongrel2Adapter({
        ...this.#opts.mongrel2,
        accept: (socket) => this.#server.emit('connection', socket),
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

  get port(): number {
    return (this.#server.address() as AddressInfo | null)?.port ?? 0;
  }

  get adapter(): Mongrel2Adapter | undefined {
    return this.#adapter;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  #track(res: ServerResponse): void {
    this.#inFlight.add(res);
    res.once('close', () => {
      this.#inFlight.delete(res);
      if (this.#inFlight.size === 0 && this.#onIdle) this.#onIdle();
    });
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.stats.requests++;
    this.#lastResponse.set(req.socket, res);
    this.#track(res);
    if (this.#closing) {
      this.stats.unavailable++;
      return plain(res, 503, 'Service Unavailable', { Connection: 'close', 'Retry-After': 1 });
    }
    const bad = checkRequest(req, this.#hygiene);
    if (bad) {
      this.stats.rejected++;
      return plain(res, bad.status, bad.message, { Connection: 'close' });
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (this.#app?.handle(req, res, path)) return;
    const host = req.headers.host;
    const match = this.#table.match(host, path);
    if (!match) {
      this.stats.notFound++;
      // Mongrel2's unmatched-route 404 closes the connection (§6.2).
      return plain(res, 404, 'Not Found', { Connection: 'close' });
    }
    const target = match.route.target;
    switch (target.kind) {
      case 'dir':
        void target.dir.serve(req, res, match.prefix, path);
        return;
      case 'proxy':
        void target.proxy.serve(req, res);
        return;
      case 'handler':
        this.#toHandler(req, res, target.pool, match.pattern);
        return;
    }
  }

  #toHandler(req: IncomingMessage, res: ServerResponse, pool: HandlerTarget, pattern: string): void {
    if (!pool.hasPeers) {
      this.stats.unavailable++;
      return plain(res, 503, 'Service Unavailable', { 'Retry-After': 1 });
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.#maxBody) {
      this.stats.tooLarge++;
      return plain(res, 413, 'Entity Too Large', { Connection: 'close' });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.#maxBody) {
        // A chunked body that grows past the limit.
        if (!tooLarge) {
          tooLarge = true;
          this.stats.tooLarge++;
          plain(res, 413, 'Entity Too Large', { Connection: 'close' });
        }
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge || res.writableEnded || res.destroyed) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      this.#send(req, res, pool, pattern, body);
    });
  }

  #send(req: IncomingMessage, res: ServerResponse, pool: HandlerTarget, pattern: string, body: Buffer): void {
    const connId = nextConnId();
    const { path, headers } = buildHeaders(req, { pattern, remoteAddr: req.socket.remoteAddress ?? '', scheme: 'http', encoding: pool.encoding });
    // An idle deadline: each reply message restarts it, so a long stream lives
    // as long as the handler keeps sending.
    const timer = setTimeout(() => {
      this.stats.timedOut++;
      relay.abort(504, 'Gateway Timeout');
      pool.disconnect(connId);
    }, this.#timeoutMs);
    const relay = new HttpRelay(res, req.method === 'HEAD', {
      onActivity: () => timer.refresh(),
      onDone: () => {
        clearTimeout(timer);
        pool.release(connId);
      },
    });
    res.once('close', () => {
      if (!relay.finished) {
        // The client went away before its reply (§3.6).
        this.stats.clientGone++;
        clearTimeout(timer);
        pool.disconnect(connId);
      }
    });
    if (!pool.send({ connId, path, headers, body }, relay)) {
      clearTimeout(timer);
      this.stats.unavailable++;
      relay.abort(503, 'Service Unavailable', { 'Retry-After': '1' });
    }
  }

  /**
   * A service call through the gateway's own route table (the default host):
   * `path` must be served by a Handler route.
   *
   * @throws M2gateError M2G_ERR_NO_ROUTE (404) and whatever serviceCall throws;
   *   a call still waiting when close() has drained fails with M2G_ERR_CALL_ABORTED.
   */
  call(path: string, init: CallInit = {}): Promise<CallReply> {
    const q = path.indexOf('?');
    const match = this.#table.match(undefined, q < 0 ? path : path.slice(0, q));
    if (match?.route.target.kind !== 'handler') {
      return Promise.reject(new M2gateError(ERROR_CODES.NO_ROUTE, `no Handler route serves ${path}`, { statusCode: 404 }));
    }
    // A call nobody waits for (ctx.send) must not outlive the gateway: its timer
    // would keep the process up to the handler timeout after close().
    const stop = new AbortController();
    const signal = init.signal ? AbortSignal.any([init.signal, stop.signal]) : stop.signal;
    this.#calls.add(stop);
    const call = serviceCall({ pool: match.route.target.pool, pattern: match.pattern }, path, { ...init, signal }, this.#timeoutMs);
    const forget = (): void => void this.#calls.delete(stop);
    call.then(forget, forget);
    return call;
  }

  /** Graceful stop (see the shutdown order above). Resolves true if everything drained in time. */
  async close(): Promise<boolean> {
    if (this.#closing) return true;
    this.#closing = true;
    const closed = this.#server.listening ? new Promise<void>((resolve) => this.#server.close(() => resolve())) : Promise.resolve();
    this.#server.closeIdleConnections();
    // Logged after the listener is closed, so a reader of this line can rely on it.
    this.log.info({ inFlight: this.#inFlight.size }, 'gateway stopped accepting');
    let drained = this.#inFlight.size === 0;
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
    await Promise.all([...this.pools.map((p) => p.close()), ...this.#proxies.map((p) => p.close())]);
    await this.#zap?.close();
    this.log.info({ drained, stats: this.stats }, 'gateway stopped');
    return drained;
  }
}
