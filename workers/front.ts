/**
 * How a service talks to its front: Mongrel2's PUSH/SUB (mongrel2-front.ts,
 * for a real Mongrel2 or any front that speaks it) or the m2gate link
 * (link-front.ts). The service's request handling is the same for both.
 */

export interface FrontEvents {
  /**
   * One Mongrel2 message (a request or a disconnect notice). `charged` when
   * the front counted it against the service's credit: the service owes one
   * credit back, with its reply or through giveBack(). `origin` names the
   * gateway it came from when the front joins several (multi-link-front.ts):
   * connection ids are only unique per gateway, and the reply must go back
   * there. Fronts with one peer leave it undefined (0).
   */
  onMessage(frame: Buffer, charged: boolean, origin?: number): void;
  /** The front forgot this service or went away: nothing it holds can be answered any more. With `origin`, only that gateway's requests. */
  onLost(origin?: number): void;
}

export interface Front {
  /** Connects and starts delivering messages. */
  connect(events: FrontEvents): void;
  /** Sends one reply message, returning `credit` credits with it, to the request's `origin`. */
  send(message: Buffer, credit: number, origin?: number): void;
  /** Returns credits of requests (from `origin`) that ended without a reply. */
  giveBack(credit: number, origin?: number): void;
  /**
   * Stops taking new requests (the drain of a graceful stop); replies still go out. A promise
   * resolves once no request sent before the peer learnt of it can still be on its way.
   */
  stopTaking(): void | Promise<void>;
  /** Flushes what is queued (bounded) and closes. */
  close(): Promise<void>;
  /** For the service's log lines. */
  readonly describe: Record<string, unknown>;
  /**
   * /readyz: why the front is not ready to deliver requests (link: not registered
   * with the gateway), or undefined when it is. Fronts without a handshake
   * (PUSH/SUB, Brubeck) are ready once connected.
   */
  notReady?(): string | undefined;
}
