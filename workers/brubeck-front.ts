/**
 * The service side of a brubeck-service (docs/brubeck-service-wire.md): what
 * a Brubeck `ServiceConnection` does, so that a Brubeck `ServiceClientMixin`
 * client can call an m2gate service. PULL connects to the client's
 * `service_addr`, ROUTER to its `service_resp_addr`; each response goes to
 * `[client sender id, "", msg]`, i.e. back to the client that asked.
 *
 * Requests become Mongrel2 requests (brubeck-translate.ts) handed to the
 * service as from any front, so routing by METHOD and path, the piscina
 * threads, timeouts and the 404/405/500/503/504 rules are the service's own.
 * The service's HTTP reply becomes the Brubeck response.
 *
 * Refused, logged and counted, never answered, while the loop goes on: a
 * malformed message, a wrong passphrase (compared in constant time; Brubeck's
 * own receive loop dies on one), and a request whose header values contain a
 * space (decoded by length here, but a response echoing them would break the
 * client's `split(' ')`). 0.1.3's registration and heartbeats are not spoken.
 */
import { checkEndpoints } from './endpoint-probe.js';
import { Pull, Router } from 'zeromq';
import type { Logger } from 'pino';
import { ProtocolError } from '../protocol/errors.js';
import { decodeBrubeckRequest, encodeBrubeckResponse, type BrubeckRequest } from '../protocol/brubeck-wire.js';
import { encodeRequest } from '../protocol/m2-request.js';
import { parseReply } from '../protocol/m2-reply.js';
import { ResponseParser, type ParsedHead } from '../protocol/http-response.js';
import { SendQueue } from '../zmq/send-queue.js';
import type { BrubeckPassphrase } from '../protocol/brubeck-passphrase.js';
import type { Front, FrontEvents } from './front.js';
import { requestHeaders, responseFields } from './brubeck-translate.js';

export interface BrubeckFrontConfig {
  /** The client's `service_addr` (its PUSH binds it). */
  serviceAddr: string;
  /** The client's `service_resp_addr` (its DEALER binds it). */
  responseAddr: string;
  passphrase: BrubeckPassphrase;
}

export interface BrubeckFrontStats {
  received: number;
  replied: number;
  malformed: number;
  refused: number;
  /** Responses the ROUTER could not route (the client's DEALER is gone). */
  unroutable: number;
}

/** The sender of the Mongrel2 requests this front makes (never on the Brubeck wire). */
const M2_SENDER = 'brubeck-front';

interface Held {
  req: BrubeckRequest;
  startTs: number;
  parser: ResponseParser;
  head?: ParsedHead;
  chunks: Buffer[];
}

const HEADER_FIELDS = ['connId', 'requestTs', 'originSenderId', 'originConnId', 'originOutAddr', 'path', 'method'] as const;

/**
 * Tries both endpoints on a throwaway PUB (which never takes a message).
 *
 * @throws M2gateError (M2G_ERR_OPTION) naming the endpoint zeromq rejects.
 */
export function checkBrubeckEndpoints(config: Pick<BrubeckFrontConfig, 'serviceAddr' | 'responseAddr'>): void {
  checkEndpoints([config.serviceAddr, config.responseAddr]);
}

export class BrubeckFront implements Front {
  readonly stats: BrubeckFrontStats = { received: 0, replied: 0, malformed: 0, refused: 0, unroutable: 0 };
  readonly #config: BrubeckFrontConfig;
  readonly #log: Logger;
  readonly #pull = new Pull();
  // mandatory: a response for a client that is not connected fails (counted) instead of vanishing.
  readonly #router = new Router({ mandatory: true, linger: 2000 });
  readonly #out: SendQueue;
  readonly #held = new Map<number, Held>();
  #nextConnId = 1;
  #reading: Promise<void> | undefined;
  #closing = false;

  /** @throws Error naming an endpoint zeromq rejects. */
  constructor(config: BrubeckFrontConfig, log: Logger) {
    this.#config = config;
    this.#log = log.child({ front: 'brubeck' });
    this.#out = new SendQueue(this.#router, { onError: (err) => this.#log.error({ err }, 'brubeck response failed') });
    // The PULL connects later, in a callback, where a typo would crash the process: check now.
    checkBrubeckEndpoints(config);
  }

  get describe(): Record<string, unknown> {
    return { brubeck: this.#config.serviceAddr, responseAddr: this.#config.responseAddr };
  }

  connect(events: FrontEvents): void {
    // Requests are pulled only once the response path is up, so that the first
    // responses are not unroutable: after the ROUTER's handshake with the client's DEALER.
    let pulling = false;
    this.#router.events.on('handshake', () => {
      if (pulling || this.#closing) return;
      pulling = true;
      this.#pull.connect(this.#config.serviceAddr);
      this.#log.info(this.describe, 'connected to the front');
    });
    this.#router.connect(this.#config.responseAddr);
    this.#reading = this.#readLoop(events);
  }

  async #readLoop(events: FrontEvents): Promise<void> {
    try {
      for await (const frames of this.#pull) this.#onRequest(frames.length === 1 ? frames[0]! : Buffer.concat(frames), events);
    } catch (err) {
      if (!this.#closing) this.#log.error({ err }, 'brubeck receive loop failed');
    }
  }

  #onRequest(message: Buffer, events: FrontEvents): void {
    let req: BrubeckRequest;
    let m2: Buffer;
    try {
      req = decodeBrubeckRequest(message);
      if (!this.#config.passphrase.matches(req.passphrase)) {
        this.stats.refused++;
        this.#log.warn({ connId: req.connId, path: req.path, refused: this.stats.refused }, 'brubeck request refused: wrong passphrase');
        return;
      }
      const spaced = HEADER_FIELDS.find((f) => req[f].includes(' ')) ?? (req.sender.includes(' ') ? 'sender' : undefined);
      if (spaced !== undefined) {
        this.stats.refused++;
        this.#log.warn({ connId: req.connId, field: spaced }, `brubeck request refused: its ${spaced} contains a space, which a response cannot carry to a Brubeck client`);
        return;
      }
      const { path, headers, body } = requestHeaders(req);
      m2 = encodeRequest({ sender: M2_SENDER, connId: this.#nextConnId, path, headers, body }, 'json');
    } catch (err) {
      this.stats.malformed++;
      // Never the bytes: they hold the passphrase.
      this.#log.warn({ err: (err as Error).message, offset: err instanceof ProtocolError ? err.offset : undefined, bytes: message.length, malformed: this.stats.malformed }, 'malformed brubeck request skipped');
      return;
    }
    const connId = this.#nextConnId++;
    const held: Held = {
      req,
      startTs: Date.now(),
      chunks: [],
      parser: new ResponseParser({
        onHead: (head) => (held.head = head),
        onBody: (chunk) => held.chunks.push(Buffer.from(chunk)),
        onEnd: () => this.#respond(connId, held),
      }),
    };
    this.#held.set(connId, held);
    this.stats.received++;
    events.onMessage(m2, false);
  }

  /** One Mongrel2 reply from the service: fed to its request's HTTP parser. */
  send(message: Buffer): void {
    const reply = parseReply(message);
    for (const id of reply.ids) {
      const held = this.#held.get(id);
      // The close message (the service ends a connection): nothing to send to Brubeck.
      if (!held || reply.body.length === 0) continue;
      try {
        held.parser.push(reply.body);
      } catch (err) {
        this.#held.delete(id);
        this.#log.error({ err, connId: held.req.connId }, 'the service wrote a reply that is not HTTP');
      }
    }
  }

  #respond(connId: number, held: Held): void {
    this.#held.delete(connId);
    const { req, head } = held;
    if (!head) return;
    const fields = responseFields(req, head, Buffer.concat(held.chunks), this.#config.passphrase.reveal(), held.startTs, Date.now());
    const msg = encodeBrubeckResponse(fields);
    this.#out.send([Buffer.from(req.sender, 'latin1'), Buffer.alloc(0), msg], (err) => {
      this.stats.unroutable++;
      this.#log.warn({ err: (err as Error).message, connId: req.connId, unroutable: this.stats.unroutable }, 'brubeck response could not reach its client');
    });
    this.stats.replied++;
  }

  giveBack(): void {}

  stopTaking(): void {
    this.#closing = true;
    try {
      this.#pull.disconnect(this.#config.serviceAddr);
    } catch {
      // never connected
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#pull.close();
    await this.#reading;
    await this.#out.flush();
    this.#router.close();
  }
}
