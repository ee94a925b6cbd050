/**
 * The classic Mongrel2 handler sockets: PULL connected to the front's
 * send_spec, PUB connected to its recv_spec (§5.1). Credit does not exist
 * here; PUSH round-robins whatever the service can hold.
 */
import { Pull, XPublisher } from 'zeromq';
import type { Logger } from 'pino';
import { SendQueue } from '../zmq/send-queue.js';
import type { Front, FrontEvents } from './front.js';
import { clientSocketOptions, type CurveConfig } from '../zmq/curve-config.js';

export class Mongrel2Front implements Front {
  readonly #send: string[];
  readonly #recv: string[];
  readonly #log: Logger;
  readonly #pull: Pull;
  readonly #pub: XPublisher;
  readonly #out: SendQueue;
  #reading: Promise<void> | undefined;
  #watching: Promise<void> | undefined;
  #closing = false;

  /** @throws M2gateError (CONFIG) when `curve` lacks the server's public key. */
  constructor(send: string[], recv: string[], log: Logger, curve?: CurveConfig) {
    this.#pull = new Pull(clientSocketOptions(curve));
    this.#pub = new XPublisher({ linger: 2000, ...clientSocketOptions(curve) });
    this.#send = send;
    this.#recv = recv;
    this.#log = log;
    this.#out = new SendQueue(this.#pub, { onError: (err) => log.error({ err }, 'publish failed') });
  }

  get describe(): Record<string, unknown> {
    return { send: this.#send, recv: this.#recv };
  }

  connect(events: FrontEvents): void {
    // Replies published before the front's SUB subscription has reached us are
    // dropped (the slow joiner, §5.1), so requests are pulled only once it has.
    // The handshake event comes too early: with it, about 1 start in 200 lost
    // its first reply (measured). An XPUB hands over each new subscription
    // after it is in effect.
    const replyPathUp = new Promise<void>((resolve) => {
      this.#watching = this.#watchSubscriptions(resolve);
    });
    // Mongrel2 (and a gateway) numbers connections from 1 in every process:
    // once a front's SUB is gone, a late reply for one of its requests would
    // reach the client of the next process that reuses the id. Forget them.
    this.#pub.events.on('disconnect', ({ address }) => {
      if (this.#closing) return;
      this.#log.info({ address }, 'the front went away');
      events.onLost();
    });
    for (const spec of this.#recv) this.#pub.connect(spec);
    void replyPathUp.then(() => {
      if (this.#closing) return;
      for (const spec of this.#send) this.#pull.connect(spec);
      this.#log.info({ send: this.#send, recv: this.#recv }, 'connected to the front');
    });
    this.#reading = this.#readLoop(events);
  }

  /** Reads the subscription messages the XPUB hands over (the queue would grow otherwise). */
  async #watchSubscriptions(onSubscribed: () => void): Promise<void> {
    try {
      for await (const [message] of this.#pub) {
        // 1 = subscribe, followed by the prefix (the Handler's recv_ident, §4.2).
        if (message?.[0] === 1) onSubscribed();
      }
    } catch (err) {
      if (!this.#closing) this.#log.error({ err }, 'subscription watch failed');
    }
  }

  async #readLoop(events: FrontEvents): Promise<void> {
    try {
      for await (const [frame] of this.#pull) if (frame) events.onMessage(frame, false);
    } catch (err) {
      if (!this.#closing) this.#log.error({ err }, 'receive loop failed');
    }
  }

  send(message: Buffer): void {
    this.#out.send(message);
  }

  giveBack(): void {}

  stopTaking(): void {
    this.#closing = true;
    for (const spec of this.#send) {
      try {
        this.#pull.disconnect(spec);
      } catch {
        // never connected
      }
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#pull.close();
    await this.#reading;
    await this.#out.flush();
    this.#pub.close();
    await this.#watching;
  }
}
