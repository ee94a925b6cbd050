/**
 * One Mongrel2 connection id, seen by the gateway's node:http server as a
 * socket (mongrel2-adapter.ts). What node:http writes becomes reply messages,
 * paced so that Mongrel2's per-connection writer queue never overflows: an
 * overflow makes Mongrel2 drop the message and kill the client connection
 * (mongrel2-protocol.md §4.5), which cuts a download short.
 *
 * - With Mongrel2's `download.flow_control=1` (the first request carried
 *   DOWNLOAD_CREDITS, §3.7): at most the granted bytes are ever outstanding.
 *   Mongrel2 counts a message against its 102,400-byte limit from enqueue to
 *   dequeue and returns credits only after writing it, so staying within
 *   credits is always safe, whatever the client's speed. A write is
 *   acknowledged only once its bytes have gone out, so node:http (and the
 *   file stream behind it) waits: memory stays at one window per connection.
 * - Without it Mongrel2 reports nothing back: a message leaves no trace until
 *   the connection is killed. The bridge then keeps the message count low by
 *   coalescing writes into messages of up to {@link UNPACED_MESSAGE_BYTES},
 *   flushed when the writer pauses. That keeps a reply of up to 15 such
 *   messages safe at any client speed; longer replies rely on Mongrel2
 *   writing to the client faster than the gateway reads (see the README's
 *   "Large downloads" section: use flow control for large files).
 */
import { Duplex } from 'node:stream';
import { DOWNLOAD_CREDITS, PACED_MESSAGE_BYTES } from '../protocol/download-credits.js';

/** Largest unpaced message: few messages per reply, bounded memory. */
export const UNPACED_MESSAGE_BYTES = 16 * 1024 * 1024;
/**
 * An unpaced writer quiet this long has finished a burst: flush it. Long
 * enough that a file stream on a busy machine (a slow read, a GC pause) does
 * not split into many messages; short against a client's patience.
 */
const UNPACED_IDLE_MS = 10;
/**
 * A write goes at the end of the event-loop turn, so a reply costs no extra
 * latency, unless it continues a stream: a flush of at least
 * {@link UNPACED_STREAM_BYTES} less than this long ago. Only a stream of large
 * writes waits for the idle timer; small replies back to back on a keep-alive
 * connection (a load test, a chatty client) never do.
 */
const UNPACED_QUIET_MS = 20;
const UNPACED_STREAM_BYTES = 32 * 1024;

export interface BridgeSocketOptions {
  remoteAddress: string;
  send: (body: Buffer) => void;
  close: () => void;
}

interface Held {
  chunks: Buffer[];
  /** Bytes of chunks[0] already sent. */
  offset: number;
  bytes: number;
  callback: (err?: Error | null) => void;
}

export class BridgeSocket extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort = 0;
  readonly #send: (body: Buffer) => void;
  readonly #close: () => void;
  /** Bytes Mongrel2 will still accept; undefined while flow control is off. */
  #credits: number | undefined;
  /** What the first request announced: credits never add up past it. */
  #allowance = DOWNLOAD_CREDITS;
  #held: Held | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #flushTimer: NodeJS.Timeout | undefined;
  #flushImmediate: NodeJS.Immediate | undefined;
  #lastFlush = 0;
  #lastFlushBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Resolves a writer waiting for node:http to read again (an upload being piped in). */
  #demand: (() => void) | undefined;
  /** An upload still being piped in: later requests of the connection wait behind it. */
  #busy: Promise<void> | undefined;

  constructor(options: BridgeSocketOptions) {
    super({ allowHalfOpen: false });
    this.remoteAddress = options.remoteAddress;
    this.#send = options.send;
    this.#close = options.close;
  }

  /** True once Mongrel2 announced download credits for this connection. */
  get paced(): boolean {
    return this.#credits !== undefined;
  }

  /** Bytes that may be sent now (flow control on), for tests and debugging. */
  get credits(): number | undefined {
    return this.#credits;
  }

  /** The connection's first request carried DOWNLOAD_CREDITS: Mongrel2 counts bytes from now on. */
  startCredits(initial: number): void {
    if (this.#credits !== undefined) return;
    this.#flush();
    this.#credits = initial;
    this.#allowance = initial;
    this.#pump();
  }

  /** Mongrel2 wrote `bytes` of our replies to the client (a credits message). */
  grant(bytes: number): void {
    if (this.#credits === undefined) return;
    // Never trust a grant past the allowance: Mongrel2's limit does not grow.
    this.#credits = Math.min(this.#credits + bytes, this.#allowance);
    this.#pump();
  }

  override _read(): void {
    const resolve = this.#demand;
    this.#demand = undefined;
    resolve?.();
  }

  /** Resolves when node:http reads again (or the socket is gone). */
  demand(): Promise<void> {
    if (this.destroyed) return Promise.resolve();
    return new Promise((resolve) => (this.#demand = resolve));
  }

  /** Bytes of a request for node:http, in order behind an upload still being piped in. */
  deliver(bytes: Buffer): void {
    if (this.#busy) this.after(() => Promise.resolve(void this.push(bytes)));
    else this.push(bytes);
  }

  /** Runs `task` once whatever is being delivered is; the connection waits for it. */
  after(task: () => Promise<void>): void {
    const run = (this.#busy ?? Promise.resolve()).then(task).catch(() => {
      this.destroy();
    });
    this.#busy = run;
    void run.then(() => {
      if (this.#busy === run) this.#busy = undefined;
    });
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    const list = chunks.map((c) => c.chunk);
    if (this.#credits === undefined) {
      this.#buffer(list);
      callback();
      return;
    }
    this.#held = { chunks: list, offset: 0, bytes: list.reduce((n, c) => n + c.length, 0), callback };
    this.#pump();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  /** Sends what the credits allow; acknowledges the held write once it is all out. */
  #pump(): void {
    const held = this.#held;
    if (!held || this.#credits === undefined) return;
    while (held.bytes > 0) {
      // Wait rather than send slivers: a message costs Mongrel2 a write and us a credits message.
      const n = Math.min(held.bytes, this.#credits, PACED_MESSAGE_BYTES);
      if (n < Math.min(held.bytes, PACED_MESSAGE_BYTES / 4)) return;
      this.#credits -= n;
      held.bytes -= n;
      this.#send(take(held, n));
    }
    this.#held = undefined;
    held.callback();
  }

  #buffer(list: Buffer[]): void {
    for (const chunk of list) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
    }
    if (this.#pendingBytes >= UNPACED_MESSAGE_BYTES) this.#flush();
    else if (this.#flushImmediate) return;
    else if (this.#lastFlushBytes < UNPACED_STREAM_BYTES || performance.now() - this.#lastFlush > UNPACED_QUIET_MS) this.#flushImmediate = setImmediate(() => this.#flush());
    else {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = setTimeout(() => this.#flush(), UNPACED_IDLE_MS);
    }
  }

  #flush(): void {
    clearTimeout(this.#flushTimer);
    clearImmediate(this.#flushImmediate);
    this.#flushTimer = undefined;
    this.#flushImmediate = undefined;
    if (this.#pending.length === 0) return;
    this.#lastFlush = performance.now();
    this.#lastFlushBytes = this.#pendingBytes;
    const body = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#send(body);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.#flush();
    this.#close();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#flushTimer);
    clearImmediate(this.#flushImmediate);
    this.#pending = [];
    this.#held = undefined;
    this._read(); // a writer waiting for demand goes on (and finds the socket gone)
    callback(err);
  }

  // node:http manages keep-alive and request timeouts through these socket methods.
  setTimeout(ms: number, onTimeout?: () => void): this {
    clearTimeout(this.#timer);
    if (onTimeout) this.once('timeout', onTimeout);
    if (ms > 0) this.#timer = setTimeout(() => this.emit('timeout'), ms).unref();
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }
}

/** Removes the first `n` bytes of a held write, as one buffer. */
function take(held: Held, n: number): Buffer {
  const parts: Buffer[] = [];
  let left = n;
  while (left > 0) {
    const first = held.chunks[0]!;
    const avail = first.length - held.offset;
    if (avail <= left) {
      parts.push(held.offset === 0 ? first : first.subarray(held.offset));
      held.chunks.shift();
      held.offset = 0;
      left -= avail;
    } else {
      parts.push(first.subarray(held.offset, held.offset + left));
      held.offset += left;
      left = 0;
    }
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
}
