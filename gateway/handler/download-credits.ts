/**
 * The gateway's side of Mongrel2's download flow control
 * (`download.flow_control=1`, mongrel2-protocol.md §3.7), for one response:
 * each reply message handed to node:http is owed back to the handler as a
 * credits notice of its byte count once the client socket has taken it (no
 * drain pending), as Mongrel2 does after writing a message. A handler that
 * paces on these never makes the gateway buffer more than its allowance plus
 * node:http's own high-water mark per connection.
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export class CreditReturn {
  /**
   * The connection's socket, not the response: a reply often ends in the
   * message that carries it, and a finished response no longer reports a
   * pending drain (nor waits for one).
   */
  readonly #socket: Duplex | null;
  readonly #give: (bytes: number) => void;
  /** Byte counts of the messages not yet credited, oldest first (one notice each, as Mongrel2). */
  #owed: number[] = [];
  #waiting = false;

  /** `give(bytes)` sends one credits notice to the handler. */
  constructor(res: ServerResponse, give: (bytes: number) => void) {
    this.#socket = res.socket;
    this.#give = give;
  }

  /** One reply message of `bytes` body bytes has been handed to node:http. */
  written(bytes: number): void {
    if (bytes === 0 || this.#gone) return;
    this.#owed.push(bytes);
    if (this.#waiting) return;
    if (this.#socket?.writableNeedDrain) {
      this.#waiting = true;
      this.#socket.once('drain', () => {
        this.#waiting = false;
        this.#settle();
      });
    } else this.#settle();
  }

  #settle(): void {
    const owed = this.#owed;
    this.#owed = [];
    for (const bytes of owed) {
      if (this.#gone) return;
      this.#give(bytes);
    }
  }

  /** A client gone takes its credits with it: the handler gets a disconnect notice instead. */
  get #gone(): boolean {
    return this.#socket === null || this.#socket.destroyed;
  }
}
