/**
 * A service joined to several gateways at once: one LinkFront (its own DEALER,
 * READY, credit, heartbeats and reconnects) per gateway, each tagged with an
 * origin number so that the service keys connections per gateway (connection
 * ids are only unique within one gateway, and two gateways loaded from the same
 * mongrel2.conf even share the sender) and sends each reply back where its
 * request came from.
 *
 * Credit is per gateway (gateway-list.ts, gatewayShare): a busy gateway uses up
 * only its own share, and a lost gateway abandons only its own requests.
 * reload() applies a new list: new gateways get a link, kept ones keep theirs
 * (and their requests in flight) with their share adjusted, and removed ones
 * get BYE, then are closed once their requests are answered.
 */
import type { Logger } from 'pino';
import type { Front, FrontEvents } from './front.js';
import { LinkFront, type LinkFrontOptions } from './link-front.js';
import { gatewayShare } from './gateway-list.js';

export interface MultiLinkFrontOptions extends Omit<LinkFrontOptions, 'endpoint' | 'origin'> {
  endpoints: string[];
  /** How long a removed gateway's requests may take before its link closes anyway. */
  drainTimeoutMs: number;
}

export class MultiLinkFront implements Front {
  readonly #opts: MultiLinkFrontOptions;
  readonly #log: Logger;
  /** The gateways in the current list, by endpoint. */
  readonly #current = new Map<string, LinkFront>();
  /** Every open link, current or draining after a removal, by origin: replies find theirs here. */
  readonly #byOrigin = new Map<number, LinkFront>();
  #nextOrigin = 1;
  #events: FrontEvents | undefined;
  #leaving = false;

  constructor(options: MultiLinkFrontOptions) {
    this.#opts = options;
    this.#log = options.log;
  }

  get endpoints(): string[] {
    return [...this.#current.keys()];
  }

  get describe(): Record<string, unknown> {
    return { connect: this.endpoints, credit: this.#share() };
  }

  #share(): number {
    return gatewayShare(this.#opts.credit, this.#opts.threads, this.#current.size);
  }

  /** Ready while registered with at least one gateway: the others are the load balancer's business. */
  notReady(): string | undefined {
    for (const front of this.#current.values()) if (front.registered) return undefined;
    return `not registered with any of the gateways ${this.endpoints.join(', ')}`;
  }

  connect(events: FrontEvents): void {
    this.#events = events;
    this.#apply(this.#opts.endpoints);
  }

  /** Joins the gateways of `endpoints` not joined yet and leaves those not in it. */
  reload(endpoints: string[]): void {
    if (this.#leaving) return;
    const added = endpoints.filter((e) => !this.#current.has(e));
    const removed = this.endpoints.filter((e) => !endpoints.includes(e));
    this.#apply(endpoints);
    this.#log.info({ connect: this.endpoints, added, removed, credit: this.#share() }, 'gateway list reloaded');
  }

  #apply(endpoints: string[]): void {
    for (const endpoint of this.endpoints) {
      if (!endpoints.includes(endpoint)) this.#remove(endpoint);
    }
    const share = gatewayShare(this.#opts.credit, this.#opts.threads, endpoints.length);
    // Kept links lower theirs first: the total held stays near --credit while the new ones register.
    for (const front of this.#current.values()) front.setShare(share);
    for (const endpoint of endpoints) {
      if (this.#current.has(endpoint)) continue;
      const origin = this.#nextOrigin++;
      const front = new LinkFront({ ...this.#opts, endpoint, origin, credit: share });
      this.#current.set(endpoint, front);
      this.#byOrigin.set(origin, front);
      front.connect(this.#events!);
    }
  }

  #remove(endpoint: string): void {
    const front = this.#current.get(endpoint)!;
    this.#current.delete(endpoint);
    void (async () => {
      await front.stopTaking();
      const idle = await front.whenIdle(this.#opts.drainTimeoutMs);
      if (!idle) this.#log.warn({ connect: endpoint, held: front.held }, 'a removed gateway still had requests when the drain timeout ended: closing its link anyway');
      // What is still the service's from that gateway (its WebSockets, requests past the drain) ends here.
      this.#events?.onLost(front.origin);
      await front.close();
      this.#byOrigin.delete(front.origin!);
      this.#log.info({ connect: endpoint }, 'left the gateway');
    })();
  }

  send(message: Buffer, credit: number, origin?: number): void {
    // A reply for a gateway already left goes nowhere: its client is gone with it.
    this.#byOrigin.get(origin ?? 0)?.send(message, credit);
  }

  giveBack(credit: number, origin?: number): void {
    this.#byOrigin.get(origin ?? 0)?.giveBack(credit);
  }

  async stopTaking(): Promise<void> {
    this.#leaving = true;
    await Promise.all([...this.#byOrigin.values()].map((f) => f.stopTaking()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.#byOrigin.values()].map((f) => f.close()));
  }
}
