/**
 * The client side of a brubeck-service (docs/brubeck-service-wire.md), in the
 * gateway: what a Brubeck `ServiceClientMixin` web app does, for app routes.
 * `ctx.call('brubeck://NAME/path?k=v', init)` and `ctx.send(…)` reach a real
 * Brubeck service (a `ServiceConnection`) with the deadlines, exactly-once
 * settlement and cancellation of gateway/service-call.ts.
 *
 * Sockets, as the Brubeck client has them: PUSH binds `serviceAddr` (the
 * service's PULL connects), DEALER binds `responseAddr` with IDENTITY = our
 * sender id (the service's ROUTER connects and sends `[sender, "", msg]`).
 * Responses are correlated by conn_id (a fresh uuid4 hex per call); one that
 * nobody waits for any more (past its deadline, aborted) is dropped and
 * counted. A response with a wrong passphrase or that is malformed is logged,
 * counted and dropped; the receive loop goes on (Brubeck's own dies on it).
 * 0.1.3's registration (REQ/REP) and heartbeats (PUB/SUB) are not spoken: a
 * service is named by its addresses, as in 0.1.0 (README, "Talking to
 * Brubeck services").
 */
import { randomUUID } from 'node:crypto';
import { Dealer, Push } from 'zeromq';
import type { Logger } from 'pino';
import { ERROR_CODES, M2gateError, ProtocolError } from '../protocol/errors.js';
import { decodeBrubeckResponse, encodeBrubeckRequest, parseBrubeckJson, type BrubeckResponse, type BrubeckVersion } from '../protocol/brubeck-wire.js';
import { SendQueue } from '../zmq/send-queue.js';
import type { BrubeckPassphrase } from '../protocol/brubeck-passphrase.js';
import { parseQuery } from '../protocol/method-router.js';
import type { CallInit, CallReply } from './handler/index.js';

export interface BrubeckServiceConfig {
  /** Names the service in `brubeck://NAME/…` URLs and in logs. */
  name: string;
  /** The service's `service_addr`: our PUSH binds it (`ipc://run/slow`, `tcp://…`). */
  serviceAddr: string;
  /** Its `service_resp_addr`: our DEALER binds it. */
  responseAddr: string;
  passphrase: BrubeckPassphrase;
  /** Framing of our requests. Defaults to 0.1.3; responses are read in either. */
  version?: BrubeckVersion;
}

/** A Brubeck service's response, as `ctx.call` resolves it. `body` is the response's JSON body. */
export interface BrubeckReply extends CallReply {
  /** The path the response names (Brubeck routes async responses by it). */
  path: string;
  /** `response`. */
  method: string;
  /** The response's `arguments` dict. */
  arguments: unknown;
  connId: string;
}

export interface BrubeckClientStats {
  sent: number;
  answered: number;
  /** Responses whose call had ended (deadline, abort): dropped. */
  late: number;
  /** Responses with a wrong passphrase: dropped. */
  refused: number;
  /** Responses that break the format: dropped. */
  malformed: number;
}

export const BRUBECK_SCHEME = 'brubeck://';

interface Waiter {
  settle(err: M2gateError | null, reply?: BrubeckReply): void;
}

const badReply = (message: string, cause?: unknown): M2gateError =>
  new M2gateError(ERROR_CODES.BAD_REPLY, `the Brubeck service's response ${message}`, { cause });

export class BrubeckClient {
  readonly name: string;
  /** Our DEALER's identity: the `sender` of every request (uuid4 hex, as Brubeck makes it). */
  readonly senderId = randomUUID().replaceAll('-', '');
  readonly stats: BrubeckClientStats = { sent: 0, answered: 0, late: 0, refused: 0, malformed: 0 };
  readonly #config: BrubeckServiceConfig;
  readonly #version: BrubeckVersion;
  readonly #log: Logger;
  readonly #push: Push;
  readonly #dealer: Dealer;
  readonly #out: SendQueue;
  readonly #waiting = new Map<string, Waiter>();
  #peers = 0;
  #calls = 0;
  #reading: Promise<void> | undefined;
  #closed = false;

  constructor(config: BrubeckServiceConfig, log: Logger) {
    this.name = config.name;
    this.#config = config;
    this.#version = config.version ?? '0.1.3';
    this.#log = log.child({ brubeck: config.name });
    this.#push = new Push({ sendHighWaterMark: 10_000, linger: 0 });
    this.#dealer = new Dealer({ routingId: this.senderId, linger: 0 });
    this.#out = new SendQueue(this.#push, { onError: (err) => this.#log.error({ err }, 'brubeck push failed') });
    // A bound PUSH with no peer leaves send() pending: count peers to answer 503 at once.
    this.#push.events.on('accept', () => {
      this.#peers++;
      this.#log.info({ peers: this.#peers }, 'brubeck service connected');
    });
    this.#push.events.on('disconnect', () => {
      this.#peers = Math.max(0, this.#peers - 1);
      this.#log.info({ peers: this.#peers }, 'brubeck service disconnected');
    });
  }

  get hasPeers(): boolean {
    return this.#peers > 0;
  }

  /** Calls waiting for their response. */
  get pending(): number {
    return this.#waiting.size;
  }

  async bind(): Promise<void> {
    await this.#dealer.bind(this.#config.responseAddr);
    await this.#push.bind(this.#config.serviceAddr);
    this.#reading = this.#readLoop();
    this.#log.info({ serviceAddr: this.#config.serviceAddr, responseAddr: this.#config.responseAddr, senderId: this.senderId, version: this.#version }, 'brubeck client bound');
  }

  /**
   * One service request; resolves with the service's response. `target` is
   * `/path?query` (the query becomes `arguments`, `init.arguments` on top);
   * `init.body` must be JSON text (default `{}`); `init.method` defaults to
   * `request`. `handleResponse` is the 0.1.3 flag (true for ctx.send).
   *
   * @throws M2gateError M2G_ERR_NO_HANDLER (503: no service connected),
   *   M2G_ERR_CALL_TIMEOUT (504), M2G_ERR_CALL_ABORTED, M2G_ERR_BAD_REPLY
   *   (502), M2G_ERR_BRUBECK (400: a value that cannot travel, a body that is not JSON).
   */
  call(target: string, init: CallInit, defaultTimeoutMs: number, handleResponse: boolean): Promise<BrubeckReply> {
    const url = `${BRUBECK_SCHEME}${this.name}${target}`;
    return new Promise<BrubeckReply>((resolve, reject) => {
      const signal = init.signal;
      if (signal?.aborted || this.#closed) {
        reject(new M2gateError(ERROR_CODES.CALL_ABORTED, `call to ${url} aborted before it was sent`));
        return;
      }
      const connId = randomUUID().replaceAll('-', '');
      let message: Buffer;
      try {
        message = this.#encode(target, init, connId, handleResponse);
      } catch (err) {
        reject(new M2gateError(ERROR_CODES.BRUBECK, `cannot call ${url}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      if (!this.hasPeers) {
        reject(new M2gateError(ERROR_CODES.NO_HANDLER, `no Brubeck service is connected to ${this.#config.serviceAddr} for ${url}`));
        return;
      }
      const timeoutMs = init.timeoutMs ?? defaultTimeoutMs;
      let done = false;
      const finish = (err: M2gateError | null, reply?: BrubeckReply): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiting.delete(connId);
        if (err) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(() => finish(new M2gateError(ERROR_CODES.CALL_TIMEOUT, `no response from ${url} within ${timeoutMs} ms`)), timeoutMs);
      const onAbort = (): void => finish(new M2gateError(ERROR_CODES.CALL_ABORTED, `call to ${url} aborted`));
      this.#waiting.set(connId, { settle: finish });
      if (!this.#out.send(message, (err) => finish(new M2gateError(ERROR_CODES.NO_HANDLER, `the request to ${url} could not be sent`, { cause: err })))) {
        finish(new M2gateError(ERROR_CODES.NO_HANDLER, `the send queue to ${this.#config.serviceAddr} is full`));
        return;
      }
      this.stats.sent++;
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** @throws ProtocolError or Error for what cannot travel. */
  #encode(target: string, init: CallInit, connId: string, handleResponse: boolean): Buffer {
    if (!target.startsWith('/')) throw new Error('the path must start with /');
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    const args: Record<string, unknown> = { ...parseQuery(q < 0 ? '' : target.slice(q + 1)) };
    for (const [key, value] of Object.entries(init.arguments ?? {})) if (key !== '__proto__' && key !== 'constructor') args[key] = value;
    const headers: Record<string, string | readonly string[]> = {};
    for (const [key, value] of Object.entries(init.headers ?? {})) if (key !== '__proto__' && key !== 'constructor') headers[key] = value;
    let body: string | Uint8Array = '{}';
    if (init.body !== undefined) {
      body = typeof init.body === 'string' ? Buffer.from(init.body) : init.body;
      parseBrubeckJson(body, 'body'); // a peer json.loads it: refuse what it cannot
    }
    return encodeBrubeckRequest({
      version: this.#version,
      sender: this.senderId,
      connId,
      requestTs: String(Date.now()),
      passphrase: this.#config.passphrase.reveal(),
      // No Mongrel2 request stands behind an app route's call: the client itself is the origin.
      originSenderId: this.senderId,
      originConnId: String(++this.#calls),
      originOutAddr: this.#config.responseAddr,
      handleResponse,
      path,
      method: init.method?.toLowerCase() ?? 'request',
      arguments: JSON.stringify(args),
      headers: JSON.stringify(headers),
      body,
    });
  }

  async #readLoop(): Promise<void> {
    try {
      // The client reads a response by concatenating all frames ("" + msg).
      for await (const frames of this.#dealer) this.#onResponse(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
    } catch (err) {
      if (!this.#closed) this.#log.error({ err }, 'brubeck receive loop failed');
    }
  }

  #onResponse(message: Buffer): void {
    let res: BrubeckResponse;
    try {
      res = decodeBrubeckResponse(message);
    } catch (err) {
      this.stats.malformed++;
      // Never the bytes: they may hold the passphrase.
      this.#log.warn({ err: (err as Error).message, offset: err instanceof ProtocolError ? err.offset : undefined, bytes: message.length, malformed: this.stats.malformed }, 'malformed brubeck response dropped');
      return;
    }
    if (!this.#config.passphrase.matches(res.passphrase)) {
      this.stats.refused++;
      this.#log.warn({ connId: res.connId, path: res.path, refused: this.stats.refused }, 'brubeck response refused: wrong passphrase');
      return;
    }
    const waiter = this.#waiting.get(res.connId);
    if (!waiter) {
      this.stats.late++;
      this.#log.info({ connId: res.connId, path: res.path, late: this.stats.late }, 'brubeck response dropped: no call waits for it (late)');
      return;
    }
    this.stats.answered++;
    try {
      waiter.settle(null, replyOf(res));
    } catch (err) {
      waiter.settle(err instanceof ProtocolError ? badReply(`is not what a Brubeck service sends: ${err.message}`, err) : badReply((err as Error).message, err));
    }
  }

  /** Aborts waiting calls (M2G_ERR_CALL_ABORTED), then closes the sockets. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of [...this.#waiting.values()]) waiter.settle(new M2gateError(ERROR_CODES.CALL_ABORTED, `the gateway stopped before ${this.name} answered`));
    this.#push.close();
    this.#dealer.close();
    await this.#reading;
  }
}

/** @throws ProtocolError for JSON fields that are not what Brubeck sends. */
function replyOf(res: BrubeckResponse): BrubeckReply {
  const status = parseBrubeckJson(res.statusCode, 'status_code');
  const reason = parseBrubeckJson(res.statusMsg, 'status_msg');
  if (!(Number.isInteger(status) && (status as number) >= 100 && (status as number) <= 599)) throw new Error(`has status_code ${String(status)}`);
  const rawHeaders = parseBrubeckJson(res.headers, 'headers');
  const headers: Record<string, string | string[]> = {};
  if (typeof rawHeaders === 'object' && rawHeaders !== null && !Array.isArray(rawHeaders)) {
    for (const [name, value] of Object.entries(rawHeaders)) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.map(String) : typeof value === 'string' ? value : JSON.stringify(value);
    }
  }
  const args = parseBrubeckJson(res.arguments, 'arguments');
  parseBrubeckJson(res.body, 'body');
  // The message buffer would stay alive as long as a view: copy the body out.
  const body = Buffer.from(res.body);
  return {
    status: status as number,
    reason: typeof reason === 'string' ? reason : String(reason),
    headers,
    body,
    text: () => body.toString('utf8'),
    json: () => JSON.parse(body.toString('utf8')) as unknown,
    path: res.path,
    method: res.method,
    arguments: args,
    connId: res.connId,
  };
}

/** The gateway's Brubeck services by name. */
export class BrubeckClients {
  readonly #clients = new Map<string, BrubeckClient>();

  /** @throws M2gateError (CONFIG) on a duplicate name. */
  constructor(configs: readonly BrubeckServiceConfig[], log: Logger) {
    for (const config of configs) {
      if (this.#clients.has(config.name)) throw new M2gateError(ERROR_CODES.CONFIG, `two Brubeck services are named ${config.name}`);
      this.#clients.set(config.name, new BrubeckClient(config, log));
    }
  }

  get(name: string): BrubeckClient | undefined {
    return this.#clients.get(name);
  }

  get all(): BrubeckClient[] {
    return [...this.#clients.values()];
  }

  async bind(): Promise<void> {
    await Promise.all(this.all.map((c) => c.bind()));
  }

  /**
   * Serves a `brubeck://NAME/path?query` call.
   *
   * @throws M2gateError M2G_ERR_NO_ROUTE (404) for an unknown NAME, and what BrubeckClient.call throws.
   */
  call(url: string, init: CallInit, defaultTimeoutMs: number, handleResponse: boolean): Promise<BrubeckReply> {
    const rest = url.slice(BRUBECK_SCHEME.length);
    const slash = rest.indexOf('/');
    const name = slash < 0 ? rest : rest.slice(0, slash);
    const client = this.#clients.get(name);
    if (!client) return Promise.reject(new M2gateError(ERROR_CODES.NO_ROUTE, `no Brubeck service is named '${name}' (--brubeck-service)`));
    return client.call(slash < 0 ? '/' : rest.slice(slash), init, defaultTimeoutMs, handleResponse);
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((c) => c.close()));
  }
}
