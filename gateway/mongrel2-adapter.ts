/**
 * The gateway behind a real Mongrel2, as one of its handlers (PULL from its
 * send_spec, PUB to its recv_spec).
 *
 * Each Mongrel2 connection id becomes an in-process connection to the
 * gateway's own node:http server (a Duplex handed to its 'connection' event):
 * the Mongrel2 request is turned back into HTTP bytes and written in, and what
 * node:http writes out goes back to Mongrel2 as replies. So everything the
 * standalone gateway does (hygiene checks, app routes, handler pools, Dir,
 * Proxy, keep-alive, HEAD, pipelining) applies unchanged, and node:http's
 * decision to close a connection (HTTP/1.0, `Connection: close`) becomes
 * Mongrel2's close message (§4.4: Mongrel2 never closes on its own).
 */
import type { Duplex } from 'node:stream';
import { Publisher, Pull } from 'zeromq';
import type { Logger } from 'pino';
import { parseRequest, type M2Request } from '../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../protocol/m2-reply.js';
import { SendQueue } from '../zmq/send-queue.js';
import { shortAnswerBytes } from './short-answer.js';
import { BridgeSocket } from './bridge-socket.js';
import { creditsOf } from '../protocol/download-credits.js';
import { Mongrel2Uploads, type UploadBridgeStats } from './mongrel2-upload.js';
import type { RelayIn, RelayOut } from './websocket-bridge.js';

export interface AdapterStats extends UploadBridgeStats {
  requests: number;
  malformed: number;
  ignored: number;
  disconnects: number;
  /** Credits messages (Mongrel2's download.flow_control, §3.7) applied to a connection. */
  credits: number;
  /** Connections cut because Mongrel2 went away (a restart). */
  reset: number;
}

function isMongrel2Key(key: string): boolean {
  // Mongrel2's own keys are upper-case; client header names are lower-cased (§3.2).
  return key !== key.toLowerCase();
}

/** The HTTP head a client sent, rebuilt from a Mongrel2 request whose body is `length` bytes. */
function httpHead(req: M2Request, length: number): Buffer {
  const h = req.headers;
  let head = `${String(h.METHOD)} ${String(h.URI ?? req.path)} ${String(h.VERSION ?? 'HTTP/1.1')}\r\n`;
  for (const key of Object.keys(h)) {
    if (isMongrel2Key(key) || key === 'content-length' || key === 'transfer-encoding' || key.startsWith('x-mongrel2-upload-')) continue;
    const value = h[key]!;
    for (const v of Array.isArray(value) ? value : [value]) head += `${key}: ${v}\r\n`;
  }
  // The body arrives whole (§3.3, or as an upload's file): frame it by length whatever the client used.
  if (length > 0 || h['content-length'] !== undefined) head += `content-length: ${length}\r\n`;
  head += '\r\n';
  return Buffer.from(head, 'utf8');
}

/** The HTTP bytes a client sent, rebuilt from a Mongrel2 request. */
function toHttp(req: M2Request): Buffer {
  const head = httpHead(req, req.body.length);
  return req.body.length === 0 ? head : Buffer.concat([head, req.body]);
}

export interface Mongrel2AdapterOptions {
  sendSpec: string;
  recvSpec: string;
  /** Hands a connection to the gateway's HTTP server. */
  accept(socket: Duplex): void;
  /** Takes a WebSocket handshake (WebSocketBridge.relay); without it WebSockets get 501. */
  webSocket?(req: M2Request, out: RelayOut): RelayIn;
  logger: Logger;
  /** The front's `upload.temp_store` as this process reaches it: async uploads are bridged (mongrel2-upload.ts). */
  uploadStore?: string | undefined;
}

export class Mongrel2Adapter {
  readonly stats: AdapterStats = { requests: 0, malformed: 0, ignored: 0, disconnects: 0, credits: 0, reset: 0, uploads: 0, uploadsRefused: 0 };
  readonly #uploads: Mongrel2Uploads | undefined;
  readonly #opts: Mongrel2AdapterOptions;
  readonly #pull = new Pull();
  readonly #pub = new Publisher({ linger: 1000 });
  readonly #out: SendQueue;
  readonly #bridges = new Map<string, BridgeSocket>();
  /** WebSocket connections relayed to the gateway's Handlers, by Mongrel2 connection. */
  readonly #sockets = new Map<string, RelayIn>();
  #reading: Promise<void> | undefined;
  #closed = false;

  constructor(options: Mongrel2AdapterOptions) {
    this.#opts = options;
    this.#uploads = options.uploadStore === undefined ? undefined : new Mongrel2Uploads(options.uploadStore, options.logger, this.stats);
    this.#out = new SendQueue(this.#pub, { onError: (err) => options.logger.error({ err }, 'publish to Mongrel2 failed') });
    // Mongrel2 restarts its connection ids at 1 (§3.1): when it goes away, every
    // bridged connection goes too, so no late reply can reach a new client.
    this.#pull.events.on('disconnect', () => this.#resetAll());
  }

  get connections(): number {
    return this.#bridges.size;
  }

  start(): void {
    this.#pub.connect(this.#opts.recvSpec);
    this.#pull.connect(this.#opts.sendSpec);
    this.#reading = this.#readLoop();
    this.#opts.logger.info({ send: this.#opts.sendSpec, recv: this.#opts.recvSpec }, 'serving as a Mongrel2 handler');
  }

  async #readLoop(): Promise<void> {
    try {
      for await (const [frame] of this.#pull) if (frame) this.#onMessage(frame);
    } catch (err) {
      if (!this.#closed) this.#opts.logger.error({ err }, 'Mongrel2 receive loop failed');
    }
  }

  #onMessage(frame: Buffer): void {
    let req: M2Request;
    try {
      req = parseRequest(frame);
    } catch (err) {
      this.stats.malformed++;
      this.#opts.logger.warn({ err: (err as Error).message }, 'malformed message from Mongrel2 skipped');
      return;
    }
    const key = `${req.sender}\0${req.connId}`;
    if (req.kind === 'websocket-handshake' || req.kind === 'websocket') return this.#webSocket(key, req);
    if (req.kind === 'disconnect') {
      this.stats.disconnects++;
      this.#sockets.get(key)?.gone();
      this.#sockets.delete(key);
      const bridge = this.#bridges.get(key);
      this.#bridges.delete(key);
      bridge?.destroy();
      return;
    }
    if (req.kind === 'credits') {
      const bridge = this.#bridges.get(key);
      const bytes = creditsOf(req);
      if (bridge && bytes !== undefined) {
        this.stats.credits++;
        bridge.grant(bytes);
      } else this.stats.ignored++;
      return;
    }
    // An upload's body comes with its upload-done (§3.4).
    if (req.kind === 'upload-start' && this.#uploads) return;
    let upload: { path: string; size: number } | undefined;
    if (req.kind === 'upload-done' && this.#uploads) {
      upload = this.#uploads.accept(req);
      if (!upload) return this.#refuse(req, 400, 'Bad Request');
    } else if (req.kind !== 'http') {
      // Uploads without --mongrel2-upload-store and JSON sockets are not bridged.
      this.stats.ignored++;
      // (An upload-done here can only carry a client's own forged headers: its start got the 413.)
      if (req.kind === 'upload-start' || req.kind === 'upload-done') this.#refuse(req, 413, 'Entity Too Large');
      return;
    }
    this.stats.requests++;
    let bridge = this.#bridges.get(key);
    if (!bridge) {
      const { sender, connId } = req;
      const remote = typeof req.headers.REMOTE_ADDR === 'string' ? req.headers.REMOTE_ADDR : '';
      const created = new BridgeSocket({
        remoteAddress: remote,
        send: (body) => this.#out.send(encodeReply(sender, connId, body)),
        close: () => {
          if (this.#bridges.get(key) === created) {
            this.#bridges.delete(key);
            this.#out.send(encodeClose(sender, connId));
          }
        },
      });
      created.on('error', () => {});
      created.once('close', () => {
        if (this.#bridges.get(key) === created) this.#bridges.delete(key);
      });
      this.#bridges.set(key, created);
      this.#opts.logger.debug({ sender, connId }, 'Mongrel2 connection bridged');
      this.#opts.accept(created);
      bridge = created;
    }
    // Only the connection's first request announces the allowance (§3.7).
    const initial = creditsOf(req);
    if (initial !== undefined) bridge.startCredits(initial);
    if (upload) {
      const file = upload;
      const into = bridge;
      into.after(async () => {
        try {
          await this.#uploads!.pipe(httpHead(req, file.size), file, into);
        } catch {
          // Midway through a request node:http cannot answer: the connection goes.
          if (this.#bridges.get(key) === into) this.#bridges.delete(key);
          this.#out.send(encodeClose(req.sender, req.connId));
          into.destroy();
        }
      });
    } else bridge.deliver(toHttp(req));
  }

  /** Answers a message that is not bridged, then closes its connection (Mongrel2 stops an upload on the close, §3.4). */
  #refuse(req: M2Request, status: number, text: string): void {
    // A keep-alive connection bridged before goes with it: Mongrel2 sends no disconnect after a close (§3.6).
    const key = `${req.sender}\0${req.connId}`;
    const bridge = this.#bridges.get(key);
    this.#bridges.delete(key);
    bridge?.destroy();
    this.#out.send(encodeReply(req.sender, req.connId, shortAnswerBytes(status, text)));
    this.#out.send(encodeClose(req.sender, req.connId));
  }

  /** WebSockets pass through (websocket-bridge.ts, relay): Mongrel2 already speaks RFC 6455 to the client. */
  #webSocket(key: string, req: M2Request): void {
    const { sender, connId } = req;
    if (req.kind === 'websocket') {
      const inbound = this.#sockets.get(key);
      if (inbound) inbound.message(req);
      else this.stats.ignored++;
      return;
    }
    this.stats.requests++;
    const out: RelayOut = {
      send: (body) => this.#out.send(encodeReply(sender, connId, body)),
      close: () => {
        this.#sockets.delete(key);
        this.#out.send(encodeClose(sender, connId));
      },
    };
    if (!this.#opts.webSocket) {
      out.send(shortAnswerBytes(501, 'Not Implemented'));
      return out.close();
    }
    this.#sockets.set(key, this.#opts.webSocket(req, out));
  }

  #resetAll(): void {
    for (const inbound of this.#sockets.values()) inbound.gone();
    this.#sockets.clear();
    for (const bridge of this.#bridges.values()) {
      this.stats.reset++;
      bridge.destroy();
    }
    this.#bridges.clear();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pull.close();
    await this.#reading;
    for (const bridge of this.#bridges.values()) bridge.end();
    await this.#out.flush();
    this.#pub.close();
  }
}
