/**
 * One peer's outgoing link messages, coalesced: what is written in one
 * event-loop turn leaves as one BATCH (protocol/m2gate-link.md) once the peer
 * has said it reads them. Each ZeroMQ message costs a native call, a promise,
 * a wake-up of libzmq's I/O thread and a TCP write (and past 128 bytes a
 * reference handed back to the main thread), whatever it carries; a batch pays
 * that once. On a trivial route it took 40 % off the CPU per request on the
 * link (bench/README.md, 2026-12-08).
 *
 * A message written alone in its turn still leaves alone, at the end of that
 * turn (setImmediate: after the poll phase that read it, before the next
 * one), so nothing waits for company. Order is kept: a message too large to
 * copy into a batch first sends what is pending, then goes alone.
 */
import { encodeBatch } from '../protocol/link-frames.js';

/** A batch is sent as soon as it holds this many bytes... */
const MAX_BATCH_BYTES = 256 * 1024;
/** ...or this many messages. */
const MAX_BATCH_ITEMS = 1024;
/** A larger message is not copied into a batch: it goes alone, after what is pending. */
const MAX_ITEM_BYTES = 64 * 1024;

export class LinkOutbox {
  readonly #write: (frame: Buffer) => void;
  #batching = false;
  #pending: Buffer[] = [];
  #bytes = 0;
  #scheduled = false;
  readonly #flushLater = (): void => {
    this.#scheduled = false;
    this.flush();
  };
  /** Messages sent, and ZeroMQ messages they took (for tests and stats). */
  readonly stats = { messages: 0, sends: 0, batches: 0 };

  /** `write` sends one link frame (alone or a BATCH) on the socket. */
  constructor(write: (frame: Buffer) => void) {
    this.#write = write;
  }

  /** The peer said FEATURES batch: from now on messages of one turn go together. */
  enableBatches(): void {
    this.#batching = true;
  }

  get batching(): boolean {
    return this.#batching;
  }

  /** Queues one link frame (as encodeLink makes it). */
  push(frame: Buffer): void {
    this.stats.messages++;
    if (!this.#batching) return this.#send(frame);
    if (frame.length > MAX_ITEM_BYTES) {
      this.flush();
      return this.#send(frame);
    }
    this.#pending.push(frame);
    this.#bytes += frame.length;
    if (this.#bytes >= MAX_BATCH_BYTES || this.#pending.length >= MAX_BATCH_ITEMS) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushLater);
    }
  }

  /** Sends what is pending now (before a BYE, a close, or a socket change). */
  flush(): void {
    const pending = this.#pending;
    if (pending.length === 0) return;
    this.#pending = [];
    this.#bytes = 0;
    if (pending.length === 1) return this.#send(pending[0]!);
    this.stats.batches++;
    this.#send(encodeBatch(pending));
  }

  /** Forgets what is pending (the peer is gone). */
  drop(): void {
    this.#pending = [];
    this.#bytes = 0;
  }

  #send(frame: Buffer): void {
    this.stats.sends++;
    this.#write(frame);
  }
}
