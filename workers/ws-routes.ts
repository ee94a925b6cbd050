/**
 * The main-thread side of a service's WebSocket routes (`'WS /path'`): what a
 * Mongrel2 handler must do for §3.9, so that route code only sees messages.
 *
 * - A WEBSOCKET_HANDSHAKE for a WS route runs its `open` on a thread, then
 *   replies the 101 (its Sec-WebSocket-Accept is the handshake's body) followed
 *   by what open sent; a refusal is an HTTP response and the close message. No
 *   WS route for the path → 404 and close.
 * - Each WEBSOCKET message is one event: text and binary run `message`; ping
 *   is answered with its pong at once (no thread hop); pong is ignored; close
 *   is answered with the close frame and the close message, then `close` runs.
 * - Events of one connection run one at a time, in arrival order, each on any
 *   thread; their sends go out in the same order (and a connection's pong may
 *   pass them). Connections run in parallel.
 * - A handler that throws or passes its deadline closes its connection with
 *   1011 (the error id is logged); `close` then runs with 1011.
 * - The Mongrel2 disconnect notice drops the connection's queued events and
 *   runs `close` with 1006. On shutdown every connection gets close 1001.
 * - webSocketSend() from any worker thread arrives on the service's
 *   BroadcastChannel; it reaches only connections open here, from the front
 *   they came through, in multi-id replies of at most 128 ids.
 *
 * Over PUSH/SUB a Mongrel2 front round-robins every message of a connection
 * across the service processes connected to its Handler: run one process per
 * WebSocket Handler there (the m2gate link keeps a connection on one service).
 */
import { BroadcastChannel } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { M2Request } from '../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../protocol/m2-reply.js';
import { matchMethodRoute, type MethodRoute } from '../protocol/method-router.js';
import { closePayload, encodeFrame, flagsOpcode, OPCODES } from '../protocol/ws-frame.js';
import { textResponse } from './result.js';
import { ownBytes, type WsResult, type WsTarget, type WsTask } from './task.js';
import { WS_METHOD } from './service-routes.js';
import type { WsChannelMessage } from './ws-worker.js';

/** Mongrel2's `limits.handler_targets`: ids in one reply. */
const MAX_IDS = 128;
/** Connections closed lately: their late frames are expected, not unknown. */
const RECENT = 4096;
/**
 * Messages of one connection waiting for its handler: a client that sends faster than its
 * route answers is closed with 1013 (try again later) past this, rather than queueing without end.
 */
export const MAX_QUEUED_MESSAGES = 1024;

export interface WsRouteInfo {
  /** Index in the routes module. */
  index: number;
  open: boolean;
  message: boolean;
  close: boolean;
  timeoutMs: number | undefined;
}

/** The WS routes among the routes module's, by index (what the threads described). */
export function wsRouteInfo(routes: ReadonlyArray<{ timeoutMs: number | undefined; ws?: { open: boolean; message: boolean; close: boolean; background: boolean } }>): Map<number, WsRouteInfo> {
  const out = new Map<number, WsRouteInfo>();
  routes.forEach((r, index) => {
    if (r.ws) out.set(index, { index, open: r.ws.open, message: r.ws.message, close: r.ws.close, timeoutMs: r.timeoutMs });
  });
  return out;
}

export interface WsRoutesDeps {
  routes: readonly MethodRoute[];
  /** By route index: the WS routes of the module. */
  wsRoutes: ReadonlyMap<number, WsRouteInfo>;
  run(task: WsTask): Promise<WsResult>;
  /** Publishes one reply message to the front (to its gateway `origin`, front.ts), returning `credit` link credits with it. */
  send(message: Buffer, credit: number, origin: number): void;
  /** Returns link credits with no reply (a handshake whose client went away while open ran). */
  refund(credit: number, origin: number): void;
  timeoutMs: number;
  channel: string;
  log: Logger;
}

export interface WsStats {
  handshakes: number;
  refused: number;
  opened: number;
  messages: number;
  closed: number;
  failures: number;
  /** Frames for connections this service does not have open, and channel sends to them. */
  unknown: number;
  /** Connections closed because MAX_QUEUED_MESSAGES messages waited for their handler. */
  overrun: number;
}

type Job = { event: 'message'; data: Buffer; binary: boolean } | { event: 'close'; code: number; reason: string; answer: boolean };

interface Conn {
  key: string;
  /** The gateway it came through (front.ts): connection ids are unique only per gateway. */
  origin: number;
  sender: string;
  connId: number;
  route: number;
  params: Record<string, string>;
  req: M2Request;
  queue: Job[];
  running: boolean;
  /** Open: frames go to it. False once a close was sent or it went away. */
  open: boolean;
  /** The client sent its close frame: later frames are ignored. */
  closing: boolean;
  /** The client went away (disconnect notice). */
  gone: boolean;
  /** The close handler has been started: nothing runs after it. */
  finished: boolean;
  /** The handshake's link credit, while open runs: returned with its answer. */
  credit: number;
  /** Its open handler runs: the handshake is not answered yet. */
  handshaking: boolean;
}

export class WsRoutes {
  readonly stats: WsStats = { handshakes: 0, refused: 0, opened: 0, messages: 0, closed: 0, failures: 0, unknown: 0, overrun: 0 };
  readonly #deps: WsRoutesDeps;
  readonly #conns = new Map<string, Conn>();
  readonly #recent = new Set<string>();
  readonly #channel: BroadcastChannel;
  /** The handlers' deadline timers running now (close() clears them). */
  readonly #deadlines = new Set<NodeJS.Timeout>();
  /** close() was called: results that come later are dropped. */
  #closed = false;

  constructor(deps: WsRoutesDeps) {
    this.#deps = deps;
    this.#channel = new BroadcastChannel(deps.channel);
    this.#channel.unref();
    this.#channel.onmessage = (event) => this.#fromChannel((event as { data: WsChannelMessage }).data);
  }

  /** Connections open now. */
  get size(): number {
    return this.#conns.size;
  }

  /**
   * A WEBSOCKET_HANDSHAKE or WEBSOCKET message from the front. Returns true
   * when it keeps the message's link credit, to return it with the handshake's
   * answer (the gateway counts the handshake in flight until then); frames
   * come uncharged (FRAME).
   */
  onMessage(req: M2Request, charged: boolean, origin = 0): boolean {
    const key = wsKey(origin, req.sender, req.connId);
    if (req.kind === 'websocket-handshake') {
      this.#handshake(key, req, charged ? 1 : 0, origin);
      return charged;
    }
    this.#frame(key, req, origin);
    return false;
  }

  #frame(key: string, req: M2Request, origin: number): void {
    const conn = this.#conns.get(key);
    if (!conn || !conn.open || conn.closing) {
      if (!this.#recent.has(key)) this.stats.unknown++;
      return;
    }
    const flags = req.headers.FLAGS;
    const opcode = typeof flags === 'string' ? flagsOpcode(flags) : undefined;
    if (opcode === OPCODES.PING) return this.#deps.send(encodeReply(req.sender, req.connId, encodeFrame(OPCODES.PONG, req.body)), 0, origin);
    if (opcode === OPCODES.TEXT || opcode === OPCODES.BINARY) {
      this.stats.messages++;
      if (conn.queue.length >= MAX_QUEUED_MESSAGES) {
        this.stats.overrun++;
        this.#deps.log.warn({ connId: conn.connId, path: conn.req.path, queued: conn.queue.length }, 'WebSocket client sends faster than its route answers: closed with 1013');
        return this.#endNow(conn, 1013, 'too many messages waiting');
      }
      return this.#enqueue(conn, { event: 'message', data: ownBytes(req.body), binary: opcode === OPCODES.BINARY });
    }
    if (opcode === OPCODES.CLOSE) {
      const code = req.body.length >= 2 ? req.body.readUInt16BE(0) : 1005;
      const reason = req.body.length > 2 ? req.body.toString('utf8', 2) : '';
      conn.closing = true;
      return this.#enqueue(conn, { event: 'close', code, reason, answer: true });
    }
    // Pong, or a FLAGS we cannot read: nothing to do.
  }

  /** The client went away (Mongrel2's disconnect notice). */
  gone(sender: string, connId: number, origin = 0): void {
    const conn = this.#conns.get(wsKey(origin, sender, connId));
    if (conn) this.#gone(conn);
  }

  /**
   * The front (or with `origin` that gateway) went away: its connections are gone with it
   * and their close handlers run with 1006. Nothing is sent for them, not even a handshake's
   * credit: the link it belonged to is over, and a new one would reuse the ids.
   */
  lost(origin?: number): void {
    for (const conn of this.#conns.values()) {
      if (origin !== undefined && conn.origin !== origin) continue;
      conn.credit = 0;
      this.#gone(conn);
    }
  }

  #gone(conn: Conn): void {
    if (conn.finished) return;
    conn.open = false;
    conn.gone = true;
    // Queued events are moot; close still runs, after the one running now.
    conn.queue = [{ event: 'close', code: 1006, reason: '', answer: false }];
    if (!conn.running) this.#next(conn);
  }

  /** Shutdown: close 1001 to every open connection; their close handlers do not run. */
  close(): void {
    this.#closed = true;
    for (const timer of this.#deadlines) clearTimeout(timer);
    this.#deadlines.clear();
    for (const conn of this.#conns.values()) {
      if (conn.open) this.#sendClose(conn, 1001, 'service shutting down');
      else if (conn.handshaking && !conn.gone) {
        // A handshake whose open still runs: answered now, with its credit (what open returns later is dropped).
        this.#deps.send(encodeReply(conn.sender, conn.connId, textResponse(503, 'Service Unavailable\n', { Connection: 'close' })), conn.credit, conn.origin);
        this.#deps.send(encodeClose(conn.sender, conn.connId), 0, conn.origin);
      } else if (conn.credit > 0) this.#deps.refund(conn.credit, conn.origin);
      conn.credit = 0;
      conn.queue = [];
    }
    this.#conns.clear();
    this.#channel.close();
  }

  #handshake(key: string, req: M2Request, credit: number, origin: number): void {
    this.stats.handshakes++;
    const found = matchMethodRoute(this.#deps.routes, WS_METHOD, req.path);
    const info = found.index === undefined ? undefined : this.#deps.wsRoutes.get(found.index);
    if (!info) {
      this.stats.refused++;
      this.#deps.send(encodeReply(req.sender, req.connId, textResponse(404, 'Not Found\n', { Connection: 'close' })), credit, origin);
      this.#deps.send(encodeClose(req.sender, req.connId), 0, origin);
      return;
    }
    const conn: Conn = { key, origin, sender: req.sender, connId: req.connId, route: info.index, params: found.params ?? {}, req, queue: [], running: false, open: false, closing: false, gone: false, finished: false, credit: 0, handshaking: false };
    this.#conns.set(key, conn);
    const switching = (): Buffer =>
      Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${req.body.toString('latin1')}\r\n\r\n`, 'latin1');
    if (!info.open) {
      conn.open = true;
      this.stats.opened++;
      this.#deps.send(encodeReply(req.sender, req.connId, switching()), credit, origin);
      return;
    }
    conn.running = true;
    conn.credit = credit;
    conn.handshaking = true;
    this.#runTask(conn, info, { event: 'open', data: new Uint8Array(0), binary: false, code: 0, reason: '' }, (result) => {
      // Gone while open ran: its close runs next (gone() queued it), nothing is sent; the
      // credit goes back unless its link went too (lost() zeroed it).
      const held = conn.credit;
      conn.credit = 0;
      conn.handshaking = false;
      if (conn.gone) return held > 0 ? this.#deps.refund(held, origin) : undefined;
      if (!result.accepted) {
        this.stats.refused++;
        this.#conns.delete(key);
        this.#deps.send(encodeReply(req.sender, req.connId, Buffer.from(result.refusal!)), held, origin);
        this.#deps.send(encodeClose(req.sender, req.connId), 0, origin);
        return;
      }
      conn.open = true;
      this.stats.opened++;
      this.#deps.send(encodeReply(req.sender, req.connId, switching()), held, origin);
      this.#apply(conn, result);
    });
  }

  #enqueue(conn: Conn, job: Job): void {
    conn.queue.push(job);
    if (!conn.running) this.#next(conn);
  }

  #next(conn: Conn): void {
    if (conn.finished) return;
    const job = conn.queue.shift();
    if (!job) return;
    const info = this.#deps.wsRoutes.get(conn.route)!;
    if (job.event === 'close') {
      if (job.answer && conn.open) {
        // Echo the client's code (RFC 6455 §5.5.1); 1005 is never sent on the wire.
        this.#sendClose(conn, job.code === 1005 ? 1000 : job.code, '');
      }
      this.#finish(conn, info, job.code, job.reason);
      return;
    }
    if (!conn.open || !info.message) return this.#next(conn);
    conn.running = true;
    this.#runTask(conn, info, { event: 'message', data: job.data, binary: job.binary, code: 0, reason: '' }, (result) => this.#apply(conn, result));
  }

  /** The connection is over: its close handler runs (once), then it is forgotten. */
  #finish(conn: Conn, info: WsRouteInfo, code: number, reason: string): void {
    conn.finished = true;
    conn.open = false;
    conn.queue = [];
    this.stats.closed++;
    const forget = (): void => {
      this.#conns.delete(conn.key);
      this.#recent.add(conn.key);
      if (this.#recent.size > RECENT) this.#recent.delete(this.#recent.values().next().value!);
    };
    if (!info.close) return forget();
    conn.running = true;
    this.#runTask(conn, info, { event: 'close', data: new Uint8Array(0), binary: false, code, reason }, (result) => {
      // Sends to itself go nowhere now; to other connections they go out.
      this.#apply(conn, result);
      forget();
    });
  }

  #runTask(conn: Conn, info: WsRouteInfo, event: Pick<WsTask, 'event' | 'data' | 'binary' | 'code' | 'reason'>, done: (result: WsResult) => void): void {
    const { req } = conn;
    const task: WsTask = { kind: 'ws', ...event, route: info.index, connId: conn.connId, sender: conn.sender, origin: conn.origin, path: req.path, params: conn.params, headers: req.headers };
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      this.#deadlines.delete(timer);
      this.#failed(conn, event.event, `past its deadline (${info.timeoutMs ?? this.#deps.timeoutMs} ms)`, randomUUID());
    }, info.timeoutMs ?? this.#deps.timeoutMs);
    this.#deadlines.add(timer);
    this.#deps.run(task).then(
      (result) => {
        if (settled || this.#closed) return;
        settled = true;
        clearTimeout(timer);
        this.#deadlines.delete(timer);
        if (result.errorId !== undefined && event.event !== 'open') return this.#failed(conn, event.event, result.error ?? 'threw', result.errorId);
        if (result.errorId !== undefined) this.#logFailure(conn, event.event, result.error ?? 'threw', result.errorId);
        done(result);
        this.#settled(conn);
      },
      (err: unknown) => {
        if (settled || this.#closed) return;
        settled = true;
        clearTimeout(timer);
        this.#deadlines.delete(timer);
        this.#failed(conn, event.event, err instanceof Error ? err.message : String(err), randomUUID());
      },
    );
  }

  #settled(conn: Conn): void {
    conn.running = false;
    if (this.#conns.get(conn.key) === conn) this.#next(conn);
  }

  #logFailure(conn: Conn, event: string, why: string, errorId: string): void {
    this.stats.failures++;
    this.#deps.log.error({ errorId, connId: conn.connId, path: conn.req.path, event, err: why }, 'WebSocket route handler failed');
  }

  /** A handler threw, died with its thread or passed its deadline: 1011 (500 for open), then close runs. */
  #failed(conn: Conn, event: string, why: string, errorId: string): void {
    this.#logFailure(conn, event, why, errorId);
    conn.running = false;
    if (event === 'open') {
      this.#conns.delete(conn.key);
      const credit = conn.credit;
      conn.credit = 0;
      conn.handshaking = false;
      // Its client (or its whole link, lost() zeroed the credit) went away meanwhile: nothing to answer.
      if (conn.gone) return credit > 0 ? this.#deps.refund(credit, conn.origin) : undefined;
      this.#deps.send(encodeReply(conn.sender, conn.connId, textResponse(500, `Internal Server Error (error id ${errorId})\n`, { Connection: 'close' })), credit, conn.origin);
      this.#deps.send(encodeClose(conn.sender, conn.connId), 0, conn.origin);
      return;
    }
    if (event === 'close') {
      this.#conns.delete(conn.key);
      return;
    }
    if (conn.open) this.#endNow(conn, 1011, 'internal error');
    else this.#next(conn);
  }

  /** What a handler sent, in order; then its ws.close(). */
  #apply(conn: Conn, result: WsResult): void {
    for (const { to, frame } of result.out) {
      const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
      if (to === 'route') for (const p of this.#routePeers(conn.route).values()) this.#deliver(p.origin, p.sender, p.ids, bytes);
      else this.#deliver(conn.origin, conn.sender, this.#targets(conn, to), bytes);
    }
    if (result.close) this.#endNow(conn, result.close.code, result.close.reason);
  }

  /** The service closes the connection: the close frame and the close message now, its close handler next. */
  #endNow(conn: Conn, code: number, reason: string): void {
    if (!conn.open) return;
    this.#sendClose(conn, code, reason);
    conn.queue = [{ event: 'close', code, reason, answer: false }];
    if (!conn.running) this.#next(conn);
  }

  /** Ids are a connection's own gateway's and front's (they are unique only there). */
  #targets(conn: Conn, to: Exclude<WsTarget, 'route'>): number[] {
    if (to === 'self') return conn.open ? [conn.connId] : [];
    return to.filter((id) => this.#isOpen(conn.origin, conn.sender, id));
  }

  /**
   * Every connection open on the route, grouped by gateway and front: one multi-id reply
   * goes to each (a service joined to several gateways has one room across them).
   */
  #routePeers(route: number, into = new Map<string, Peer>()): Map<string, Peer> {
    for (const c of this.#conns.values()) if (c.open && c.route === route) peerIds(into, c.origin, c.sender).push(c.connId);
    return into;
  }

  #isOpen(origin: number, sender: string, id: number): boolean {
    const open = this.#conns.get(wsKey(origin, sender, id))?.open === true;
    if (!open) this.stats.unknown++;
    return open;
  }

  #deliver(origin: number, sender: string, ids: number[], frame: Buffer): void {
    for (let i = 0; i < ids.length; i += MAX_IDS) this.#deps.send(encodeReply(sender, ids.slice(i, i + MAX_IDS), frame), 0, origin);
  }

  #sendClose(conn: Conn, code: number, reason: string): void {
    conn.open = false;
    this.#deps.send(encodeReply(conn.sender, conn.connId, encodeFrame(OPCODES.CLOSE, closePayload(code, reason))), 0, conn.origin);
    this.#deps.send(encodeClose(conn.sender, conn.connId), 0, conn.origin);
  }

  /** webSocketSend() / webSocketClose() from a worker thread. */
  #fromChannel(msg: WsChannelMessage): void {
    const frame = Buffer.from(msg.frame.buffer, msg.frame.byteOffset, msg.frame.byteLength);
    // One multi-id reply per gateway and front.
    const byPeer = msg.route ? this.#routePeers(msg.route.index) : new Map<string, Peer>();
    for (const { sender, id, gateway = 0 } of msg.to) {
      if (this.#isOpen(gateway, sender, id)) peerIds(byPeer, gateway, sender).push(id);
    }
    const code = frame.length >= 4 ? frame.readUInt16BE(2) : 1000;
    const reason = frame.length > 4 ? frame.toString('utf8', 4) : '';
    for (const { origin, sender, ids } of byPeer.values()) {
      if (!msg.close) this.#deliver(origin, sender, ids, frame);
      else for (const id of ids) this.#endNow(this.#conns.get(wsKey(origin, sender, id))!, code, reason);
    }
  }
}

function wsKey(origin: number, sender: string, connId: number): string {
  return `${origin}\0${sender}\0${connId}`;
}

interface Peer {
  origin: number;
  sender: string;
  ids: number[];
}

function peerIds(peers: Map<string, Peer>, origin: number, sender: string): number[] {
  const k = `${origin}\0${sender}`;
  let p = peers.get(k);
  if (!p) peers.set(k, (p = { origin, sender, ids: [] }));
  return p.ids;
}
