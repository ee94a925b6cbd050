/**
 * zeromq.js allows one pending send() per socket; a second one fails with
 * EBUSY. Every socket that several tasks write to gets one of these: a bounded
 * FIFO drained by a single pump loop, so callers never await the socket.
 */

/** One ZeroMQ message: a single frame or a multipart list. */
export type Message = Buffer | Buffer[];

export interface Writable {
  send(message: Message): Promise<void>;
}

/** Told when this one message could not be sent (a ROUTER peer that is gone, ...). */
export type OnSendFailure = (err: unknown) => void;

export interface SendQueueOptions {
  /** Most messages waiting; past it send() refuses. Defaults to 10,000. */
  maxQueued?: number;
  /** Called when a send fails (socket closed, ...); the message is dropped. */
  onError?: (err: unknown) => void;
}

export class SendQueue {
  readonly #socket: Writable;
  readonly #maxQueued: number;
  readonly #onError: (err: unknown) => void;
  #queue: Message[] = [];
  /** Per-message failure callbacks, parallel to #queue (undefined for most). */
  #failures: Array<OnSendFailure | undefined> = [];
  #head = 0;
  #pumping = false;
  #idle: Array<() => void> = [];
  dropped = 0;

  constructor(socket: Writable, options: SendQueueOptions = {}) {
    this.#socket = socket;
    this.#maxQueued = options.maxQueued ?? 10_000;
    this.#onError = options.onError ?? (() => {});
  }

  get length(): number {
    return this.#queue.length - this.#head;
  }

  /** Queues a message; returns false (and counts a drop) when the queue is full. */
  send(message: Message, onFailure?: OnSendFailure): boolean {
    if (this.length >= this.#maxQueued) {
      this.dropped++;
      return false;
    }
    this.#queue.push(message);
    this.#failures.push(onFailure);
    if (!this.#pumping) void this.#pump();
    return true;
  }

  /** Resolves once every queued message has been handed to the socket. */
  flush(): Promise<void> {
    if (!this.#pumping && this.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    while (this.#head < this.#queue.length) {
      const index = this.#head;
      const message = this.#queue[index]!;
      this.#queue[this.#head++] = EMPTY;
      const onFailure = this.#failures[index];
      this.#failures[index] = undefined;
      // Compact once the consumed prefix dominates, so the array does not grow forever.
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#failures = this.#failures.slice(this.#head);
        this.#head = 0;
      }
      try {
        await this.#socket.send(message);
      } catch (err) {
        this.dropped++;
        if (onFailure) onFailure(err);
        else this.#onError(err);
      }
    }
    this.#queue = [];
    this.#failures = [];
    this.#head = 0;
    this.#pumping = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}

const EMPTY = Buffer.alloc(0);
