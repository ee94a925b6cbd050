/**
 * The service's side of link credit (protocol/m2gate-link.md): every message
 * the front charged costs one credit, and the service owes exactly that credit
 * back once: with the request's reply, or through `giveBack()` when the message
 * never became a request or the request ends without a reply (client gone,
 * pipelined behind a close). The front (link-front.ts) coalesces what it is
 * given back into CREDIT messages. Over Mongrel2's PUSH/SUB nothing is charged,
 * so everything here returns 0 credits.
 */
import type { Front } from './front.js';

/** A request's claim on one link credit. */
export interface CreditHolder {
  /** Holds a credit not yet returned. */
  charged: boolean;
  /** The gateway the credit goes back to (FrontEvents.onMessage). */
  origin?: number | undefined;
}

export class CreditLedger {
  readonly #front: Front;
  #held = 0;

  constructor(front: Front) {
    this.#front = front;
  }

  /** Credits held by requests not yet answered or dropped (for tests and debugging). */
  get held(): number {
    return this.#held;
  }

  /** The request holds its message's credit (when charged) until reply() or refund(). */
  hold(item: CreditHolder, charged: boolean): void {
    item.charged = charged;
    if (charged) this.#held++;
  }

  /** A charged message that became no request (malformed, a disconnect notice, ...): its credit goes back now. */
  refundMessage(charged: boolean, origin?: number): void {
    if (charged) this.#front.giveBack(1, origin);
  }

  /** Sends the request's reply with the credit it holds. */
  reply(item: CreditHolder, message: Buffer): void {
    const credit = item.charged ? 1 : 0;
    item.charged = false;
    this.#held -= credit;
    this.#front.send(message, credit, item.origin);
  }

  /** The request ends without a reply: its credit goes back. */
  refund(item: CreditHolder): void {
    if (!item.charged) return;
    item.charged = false;
    this.#held--;
    this.#front.giveBack(1, item.origin);
  }
}
