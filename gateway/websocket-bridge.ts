/**
 * WebSocket connections bridged to a Handler as Mongrel2 1.12.2 does it
 * (mongrel2-protocol.md §3.9): the upgrade request goes to the handler as a
 * WEBSOCKET_HANDSHAKE message whose body is the Sec-WebSocket-Accept value;
 * the gateway writes nothing itself, the handler answers with the whole 101
 * (or an HTTP refusal); from then on each client message (fragments
 * reassembled, control frames as they come) goes to the handler as a WEBSOCKET
 * message with the handshake's headers plus FLAGS and the unmasked payload, and
 * the handler's replies are copied to the client as raw frames. The empty
 * reply closes the connection; a client that goes away costs a disconnect
 * notice (§3.6), not after the handler closed it itself.
 *
 * node:http hands every request with `Connection: upgrade` to the server's
 * 'upgrade' event, with the socket no longer parsed as HTTP. upgradeResponse()
 * gives such a request an ordinary ServerResponse on that socket (closed after
 * its answer), so that it goes through the gateway like any other request
 * (hygiene, draining, app routes, the route table, 404, 503, metrics); only a
 * Handler route turns a WebSocket upgrade into a bridged connection (open()).
 *
 * Stricter than Mongrel2, on purpose:
 * - only a GET without a body is a WebSocket upgrade (RFC 6455 §4.1); any other
 *   upgrade request is served as plain HTTP and its connection closed after
 *   the answer, and one that carries a body gets 400 (the body was not read);
 * - the frame rules of protocol/ws-frame.ts (RSV bits, opcodes, continuation
 *   order, UTF-8 text, size): a client that breaks them gets a close frame
 *   with the RFC's code and the handler a disconnect notice;
 * - a reply to the handshake that is not a 101 is parsed and relayed as HTTP
 *   (a malformed one is a 502), never copied raw;
 * - a handshake with no reply within the handler timeout gets 504 plus a
 *   disconnect notice; after the client's close frame the handler has the same
 *   time to close, then the gateway closes;
 * - a client that does not read (its socket buffer over MAX_BUFFERED_BYTES)
 *   is cut, with a disconnect notice (Mongrel2 cuts at 16 queued messages, §4.5);
 * - on shutdown each connection gets close 1001 and its handler a disconnect.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { buildHeaders } from './m2-request-builder.js';
import type { HeaderMap, M2Request } from '../protocol/m2-request.js';
import { acceptKey, closePayload, encodeFrame, flagsHeader, FrameParser, OPCODES, CLOSE_CODES } from '../protocol/ws-frame.js';
import type { HandlerTarget } from './handler/handler-target.js';
import type { ReplySink } from './handler/reply-dispatch.js';
import { nextConnId } from './handler/reply-dispatch.js';
import { HttpRelay } from './handler/http-relay.js';
import { sendShortAnswer, shortAnswerBytes } from './short-answer.js';
import type { RouteHit } from './route-target.js';

/** Bytes waiting in a client's socket before the gateway gives up on it. */
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/** How long a closed connection waits for the client to close its side. */
const CLOSE_LINGER_MS = 2000;

/** What the upgrade listener saw: the socket and the bytes after the head. */
const upgrades = new WeakMap<IncomingMessage, { socket: Duplex; head: Buffer }>();

/**
 * §3.9's test (measured on Mongrel2): sec-websocket-key, sec-websocket-version
 * and host present, `upgrade: websocket` and `connection` containing `upgrade`
 * (case-insensitive); here also GET without a body.
 */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const h = req.headers;
  if (req.method !== 'GET' || hasBody(req)) return false;
  if (h['sec-websocket-key'] === undefined || h['sec-websocket-version'] === undefined || h.host === undefined) return false;
  if (h.upgrade?.toLowerCase() !== 'websocket') return false;
  return (h.connection ?? '').toLowerCase().includes('upgrade');
}

function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/**
 * A ServerResponse for a request node:http gave to 'upgrade': on the raw
 * socket, `Connection: close`, the socket ended after the answer.
 */
export function upgradeResponse(req: IncomingMessage, socket: Duplex, head: Buffer): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  // node removes its own error listener from an upgraded socket; and http.Server sockets allow
  // half-open connections, so a client's FIN would leave this one open for ever.
  socket.on('error', () => socket.destroy());
  socket.once('end', () => socket.destroy());
  // The socket stays assigned, so that its close is the response's 'close' (what the gateway's
  // in-flight count waits for); a client that keeps its side open loses it after a while.
  res.once('finish', () => {
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_LINGER_MS).unref();
  });
  upgrades.set(req, { socket, head });
  return res;
}

/**
 * The gateway's 'upgrade' listener: the request gets its response (above) and
 * goes to `serve` as any request does. An upgrade that declares a body and is
 * not a WebSocket one gets 400: node did not read that body.
 */
export function acceptUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, serve: (req: IncomingMessage, res: ServerResponse) => void): void {
  const res = upgradeResponse(req, socket, head);
  if (hasBody(req)) return sendShortAnswer(res, 400, 'Bad Request', { close: true });
  serve(req, res);
}

/** True when `req` came through upgradeResponse() (its body, if any, was never read). */
export function isUpgradeRequest(req: IncomingMessage): boolean {
  return upgrades.has(req);
}

export interface WebSocketBridgeOptions {
  /** Largest client message (fragments together), in bytes; larger → close 1009. */
  maxMessageBytes: number;
  /** The handler timeout: for the handshake's answer, and for the close after the client's close frame. */
  timeoutMs: number;
  retryAfterS: number;
  log: Logger;
}

export interface WebSocketStats {
  /** Handshakes sent to handlers. */
  handshakes: number;
  /** Connections switched to frames by a handler's 101. */
  opened: number;
  /** Client messages sent to handlers. */
  messagesIn: number;
  /** Reply messages copied to clients. */
  messagesOut: number;
  /** Clients that broke RFC 6455 (closed with 1002, 1007 or 1009). */
  protocolErrors: number;
  /** Clients cut for not reading. */
  slowClients: number;
}

export class WebSocketBridge {
  readonly stats: WebSocketStats = { handshakes: 0, opened: 0, messagesIn: 0, messagesOut: 0, protocolErrors: 0, slowClients: 0 };
  readonly #opts: WebSocketBridgeOptions;
  readonly #live = new Set<WsSession>();
  readonly #relays = new Set<RelaySession>();

  constructor(options: WebSocketBridgeOptions) {
    this.#opts = options;
  }

  /** Connections bridged now (handshake sent, not yet closed). */
  get size(): number {
    return this.#live.size;
  }

  /**
   * Bridges the WebSocket upgrade `req` (isWebSocketUpgrade, through
   * upgradeResponse) to `pool`. Returns false when the pool refused the
   * handshake message (the caller answers 503).
   */
  open(pool: HandlerTarget, req: IncomingMessage, res: ServerResponse, hit: RouteHit): boolean {
    const up = upgrades.get(req);
    if (!up) throw new Error('open() needs a request from upgradeResponse()');
    const session = new WsSession(pool, req, res, up.socket, hit, this.#opts, this.stats, () => this.#live.delete(session));
    if (!session.start(up.head)) return false;
    this.#live.add(session);
    return true;
  }

  /** Shutdown: every connection gets close 1001 (or 503 before its 101) and its handler a disconnect notice. */
  close(): void {
    for (const s of [...this.#live]) s.shutdown();
    for (const r of [...this.#relays]) r.shutdown();
  }

  /**
   * Behind a real Mongrel2 (--mongrel2): Mongrel2 already speaks WebSocket to
   * the client, so its messages are passed through, not re-framed. The
   * handshake `req` is routed with the gateway's own table (`route`) and sent
   * to that Handler with its PATTERN and the gateway's own connection id; its
   * frames follow with sendMore(); the Handler's replies (the 101, raw frames,
   * the close) go back to Mongrel2 through `out` unchanged. No Handler route →
   * 404, none connected → 503, each followed by the close.
   *
   * Returns where the connection's later Mongrel2 messages go.
   */
  relay(req: M2Request, out: RelayOut, route: (host: string | undefined, path: string) => { pool: HandlerTarget; pattern: string } | undefined): RelayIn {
    const host = typeof req.headers.host === 'string' ? req.headers.host : undefined;
    const target = route(host, req.path);
    const refuse = (status: number, text: string): RelayIn => {
      out.send(shortAnswerBytes(status, text));
      out.close();
      return { message: () => {}, gone: () => {} };
    };
    if (!target) return refuse(404, 'Not Found');
    const session = new RelaySession(target.pool, target.pattern, out, this.#opts, () => this.#relays.delete(session));
    if (!session.start(req)) return refuse(503, 'Service Unavailable');
    this.stats.handshakes++;
    this.#relays.add(session);
    return session;
  }
}

/** Where a relayed connection's replies go: Mongrel2, for its connection id. */
export interface RelayOut {
  send(body: Buffer): void;
  /** The close message. */
  close(): void;
}

/** A relayed connection's later messages from Mongrel2. */
export interface RelayIn {
  /** A WEBSOCKET message. */
  message(req: M2Request): void;
  /** Mongrel2's disconnect notice. */
  gone(): void;
}

/** One WebSocket connection relayed from a real Mongrel2 to one of the gateway's Handlers. */
class RelaySession implements ReplySink, RelayIn {
  readonly #connId = nextConnId();
  readonly #pool: HandlerTarget;
  readonly #pattern: string;
  readonly #out: RelayOut;
  readonly #opts: WebSocketBridgeOptions;
  readonly #onEnd: () => void;
  #timer: NodeJS.Timeout | undefined;
  #open = false;
  #ended = false;

  constructor(pool: HandlerTarget, pattern: string, out: RelayOut, opts: WebSocketBridgeOptions, onEnd: () => void) {
    this.#pool = pool;
    this.#pattern = pattern;
    this.#out = out;
    this.#opts = opts;
    this.#onEnd = onEnd;
  }

  #fields(req: M2Request): { connId: number; path: string; headers: HeaderMap; body: Buffer } {
    // Mongrel2's own map, with the gateway's route as PATTERN (as for HTTP behind it).
    const headers: HeaderMap = {};
    for (const key of Object.keys(req.headers)) headers[key] = key === 'PATTERN' ? this.#pattern : req.headers[key]!;
    return { connId: this.#connId, path: req.path, headers, body: req.body };
  }

  start(req: M2Request): boolean {
    if (!this.#pool.hasPeers || !this.#pool.send(this.#fields(req), this)) return false;
    this.#timer = setTimeout(() => {
      if (this.#open) return;
      this.#out.send(shortAnswerBytes(504, 'Gateway Timeout'));
      this.#end(true);
    }, this.#opts.timeoutMs);
    return true;
  }

  message(req: M2Request): void {
    if (this.#ended) return;
    if (!this.#pool.sendMore(this.#fields(req), this)) {
      this.#out.send(encodeFrame(OPCODES.CLOSE, closePayload(1011, 'no handler')));
      this.#end(true);
    }
  }

  gone(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#timer);
    this.#pool.disconnect(this.#connId);
    this.#pool.release(this.#connId);
    this.#onEnd();
  }

  /** Ends the relayed connection from here: Mongrel2 closes it, the Handler is told (when `tell`). */
  #end(tell: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#timer);
    this.#out.close();
    if (tell) this.#pool.disconnect(this.#connId);
    this.#pool.release(this.#connId);
    this.#onEnd();
  }

  onData(body: Buffer): void {
    if (this.#ended) return;
    if (!this.#open) {
      clearTimeout(this.#timer);
      this.#open = true;
      if (isSwitching(body)) this.#pool.hold(this.#connId);
    }
    // Mongrel2 copies a handler's bytes to its client: so does the relay, to Mongrel2.
    this.#out.send(body);
  }

  onClose(): void {
    this.#end(false);
  }

  onFail(status: 502 | 503, message: string): void {
    if (!this.#open) this.#out.send(shortAnswerBytes(status, message));
    this.#end(false);
  }

  shutdown(): void {
    if (this.#open) this.#out.send(encodeFrame(OPCODES.CLOSE, closePayload(CLOSE_CODES.GOING_AWAY, 'gateway shutting down')));
    else this.#out.send(shortAnswerBytes(503, 'Service Unavailable'));
    this.#end(true);
  }
}

type State = 'handshake' | 'open' | 'refused' | 'closed';

class WsSession implements ReplySink {
  readonly #connId = nextConnId();
  readonly #pool: HandlerTarget;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #socket: Duplex;
  readonly #hit: RouteHit;
  readonly #opts: WebSocketBridgeOptions;
  readonly #stats: WebSocketStats;
  readonly #onEnd: () => void;
  readonly #parser: FrameParser;
  #state: State = 'handshake';
  #path = '';
  #headers: HeaderMap = {};
  #timer: NodeJS.Timeout | undefined;
  #relay: HttpRelay | undefined;
  /** The handler closed it, or was told it is gone: no disconnect notice (more). */
  #handlerDone = false;

  constructor(pool: HandlerTarget, req: IncomingMessage, res: ServerResponse, socket: Duplex, hit: RouteHit, opts: WebSocketBridgeOptions, stats: WebSocketStats, onEnd: () => void) {
    this.#pool = pool;
    this.#req = req;
    this.#res = res;
    this.#socket = socket;
    this.#hit = hit;
    this.#opts = opts;
    this.#stats = stats;
    this.#onEnd = onEnd;
    this.#parser = new FrameParser(
      { onMessage: (first, payload) => this.#fromClient(first, payload), onError: (code, reason) => this.#protocolError(code, reason) },
      { maxMessageBytes: opts.maxMessageBytes },
    );
  }

  start(head: Buffer): boolean {
    const { path, headers } = buildHeaders(this.#req, { pattern: this.#hit.pattern, remoteAddr: this.#req.socket.remoteAddress ?? '', scheme: 'http', encoding: this.#pool.encoding });
    this.#path = path;
    this.#headers = headers;
    // Overwritten in place: the key keeps the position Mongrel2 gives METHOD (fixture req-ws-handshake.*).
    const handshake: HeaderMap = { ...headers, METHOD: 'WEBSOCKET_HANDSHAKE' };
    const key = this.#req.headers['sec-websocket-key'] as string;
    if (!this.#pool.send({ connId: this.#connId, path, headers: handshake, body: acceptKey(key) }, this)) return false;
    this.#stats.handshakes++;
    this.#timer = setTimeout(() => {
      if (this.#state !== 'handshake') return;
      this.#disconnect();
      this.#state = 'closed';
      sendShortAnswer(this.#res, 504, 'Gateway Timeout', { close: true });
    }, this.#opts.timeoutMs);
    this.#res.once('close', () => this.#gone());
    // Frames a client sends before the 101 are forwarded at once, as Mongrel2 does.
    this.#socket.on('data', (chunk: Buffer) => this.#parser.push(chunk));
    if (head.length > 0) this.#parser.push(head);
    return true;
  }

  /** The client message, as Mongrel2 sends it: the handshake's headers, METHOD WEBSOCKET, FLAGS. */
  #fromClient(first: number, payload: Buffer): void {
    if (this.#state !== 'handshake' && this.#state !== 'open') return;
    this.#stats.messagesIn++;
    if (!this.#pool.sendMore({ connId: this.#connId, path: this.#path, headers: this.#frameHeaders(flagsHeader(first)), body: payload }, this)) {
      // The handler is gone: nothing can answer this connection any more.
      this.#closeWith(1011, 'no handler');
      return;
    }
    if ((first & 0x0f) === OPCODES.CLOSE) {
      // The handler answers the close (Mongrel2 does not); if it never does, the gateway closes.
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#socket.destroy(), this.#opts.timeoutMs);
    }
  }

  /**
   * Mongrel2's key order (fixture req-ws-text-frame.*): FLAGS right after
   * x-forwarded-for in JSON, right before it in tnetstring.
   */
  #frameHeaders(flags: string): HeaderMap {
    const out: HeaderMap = {};
    const json = this.#pool.encoding === 'json';
    for (const key of Object.keys(this.#headers)) {
      if (!json && key === 'x-forwarded-for') out.FLAGS = flags;
      out[key] = key === 'METHOD' ? 'WEBSOCKET' : this.#headers[key]!;
      if (json && key === 'x-forwarded-for') out.FLAGS = flags;
    }
    return out;
  }

  #protocolError(code: number, reason: string): void {
    this.#stats.protocolErrors++;
    this.#opts.log.info({ connId: this.#connId, code, reason }, 'WebSocket client broke the protocol');
    this.#closeWith(code, reason);
  }

  /** The gateway closes: a close frame once the handler's 101 went, else a cut; the handler is told. */
  #closeWith(code: number, reason: string): void {
    const wasOpen = this.#state === 'open';
    this.#state = 'closed';
    this.#disconnect();
    if (wasOpen && this.#socket.writable) {
      this.#socket.end(encodeFrame(OPCODES.CLOSE, closePayload(code, reason)));
      // A client that never closes its side does not keep the socket.
      setTimeout(() => this.#socket.destroy(), CLOSE_LINGER_MS).unref();
    } else {
      this.#socket.destroy();
    }
  }

  // ---- the handler's replies (ReplySink) ----

  onData(body: Buffer): void {
    if (this.#state === 'refused') return this.#relay!.onData(body);
    if (this.#state === 'handshake') {
      clearTimeout(this.#timer);
      if (!isSwitching(body)) return this.#refused(body);
      this.#state = 'open';
      this.#stats.opened++;
      this.#res.statusCode = 101;
      this.#pool.hold(this.#connId);
    }
    if (this.#state !== 'open') return;
    this.#stats.messagesOut++;
    this.#socket.write(body);
    if (this.#socket.writableLength > MAX_BUFFERED_BYTES) {
      this.#stats.slowClients++;
      this.#opts.log.warn({ connId: this.#connId, buffered: this.#socket.writableLength }, 'WebSocket client not reading: cut');
      this.#state = 'closed';
      this.#disconnect();
      this.#socket.destroy();
    }
  }

  /** Not a 101: an HTTP answer to the upgrade, relayed (and checked) as any reply is. */
  #refused(body: Buffer): void {
    this.#state = 'refused';
    this.#relay = new HttpRelay(this.#res, false, this.#opts.retryAfterS, { onDone: () => this.#pool.release(this.#connId) });
    this.#relay.onData(body);
  }

  onClose(): void {
    // The handler closed it itself: no disconnect notice (§3.6).
    this.#handlerDone = true;
    if (this.#state === 'refused') return this.#relay!.onClose();
    clearTimeout(this.#timer);
    const wasHandshake = this.#state === 'handshake';
    this.#state = 'closed';
    if (wasHandshake) this.#socket.destroy();
    else {
      this.#socket.end();
      setTimeout(() => this.#socket.destroy(), CLOSE_LINGER_MS).unref();
    }
  }

  onFail(status: 502 | 503, message: string): void {
    this.#handlerDone = true;
    if (this.#state === 'refused') return this.#relay!.onFail(status, message);
    const wasHandshake = this.#state === 'handshake';
    this.#state = 'closed';
    if (wasHandshake) sendShortAnswer(this.#res, status, message, status === 503 ? { close: true, retryAfterS: this.#opts.retryAfterS } : { close: true });
    else this.#socket.destroy();
  }

  // ---- ends ----

  #disconnect(): void {
    if (this.#handlerDone) return;
    this.#handlerDone = true;
    this.#pool.disconnect(this.#connId);
  }

  /** The socket closed, whoever closed it. */
  #gone(): void {
    clearTimeout(this.#timer);
    // The relay released the id of a refused handshake when it finished; a cut one still holds it.
    if (this.#state !== 'refused' || !this.#relay?.finished) this.#disconnect();
    this.#pool.release(this.#connId);
    this.#state = 'closed';
    this.#onEnd();
  }

  shutdown(): void {
    if (this.#state === 'handshake') {
      this.#disconnect();
      this.#state = 'closed';
      sendShortAnswer(this.#res, 503, 'Service Unavailable', { close: true, retryAfterS: this.#opts.retryAfterS });
      return;
    }
    if (this.#state === 'open') this.#closeWith(CLOSE_CODES.GOING_AWAY, 'gateway shutting down');
  }
}

/** The handler's first reply switches the connection when it is a 101 (its bytes then go out as they are). */
function isSwitching(body: Buffer): boolean {
  return /^HTTP\/1\.[01] 101[ \r]/.test(body.toString('latin1', 0, 13));
}
