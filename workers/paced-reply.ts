/**
 * The service's side of Mongrel2's download flow control
 * (`download.flow_control=1`, mongrel2-protocol.md §3.7). With it on, the
 * front accepts at most 102,400 bytes per connection that it has not written
 * yet, and kills the connection when a reply would exceed that (measured with
 * one 110 KiB reply). So for a connection whose first request announced
 * DOWNLOAD_CREDITS, every reply goes out in messages that fit the credits the
 * front has granted, the next one only once credits for earlier ones came
 * back; the close message and later replies queue behind it. Connections
 * without the announcement are sent as before, in one message.
 *
 * It wraps the service's front: the service's request handling does not
 * change, it only tells this of announcements, credits and disconnects.
 */
import type { Logger } from 'pino';
import type { Front, FrontEvents } from './front.js';
import { encodeReply, parseReply } from '../protocol/m2-reply.js';
import { PACED_MESSAGE_BYTES } from '../protocol/download-credits.js';

/** Connections remembered at most (Mongrel2 tells nothing of an idle connection it reaps, §5.4). */
const MAX_WINDOWS = 16_384;

interface Queued {
  /** The reply body still to send (empty: the close message). */
  body: Buffer;
  /** Link credit returned with the last piece. */
  credit: number;
}

interface Window {
  /** The gateway the connection is on (front.ts): ids are unique only per gateway. */
  origin: number;
  sender: string;
  connId: number;
  credits: number;
  queue: Queued[];
  stall: NodeJS.Timeout | undefined;
}

export interface PacedFrontOptions {
  /** No credits for this long while a reply waits → the connection is cut (its credits went elsewhere). */
  stallMs: number;
  log: Logger;
}

export class PacedFront implements Front {
  readonly #inner: Front;
  readonly #opts: PacedFrontOptions;
  /** By windowKey(), oldest first (Map order) for eviction. */
  readonly #windows = new Map<string, Window>();
  /** Replies cut because no credits came (for tests and the log). */
  stalled = 0;

  constructor(inner: Front, options: PacedFrontOptions) {
    this.#inner = inner;
    this.#opts = options;
  }

  /** The front it wraps (the service reloads a MultiLinkFront's list through it). */
  get inner(): Front {
    return this.#inner;
  }

  get describe(): Record<string, unknown> {
    return this.#inner.describe;
  }

  /** Connections whose replies are paced (for tests and debugging). */
  get paced(): number {
    return this.#windows.size;
  }

  connect(events: FrontEvents): void {
    this.#inner.connect({
      onMessage: (frame, charged, origin) => events.onMessage(frame, charged, origin),
      onLost: (origin) => {
        this.#forgetAll(origin);
        events.onLost(origin);
      },
    });
  }

  notReady(): string | undefined {
    return this.#inner.notReady?.();
  }

  giveBack(credit: number, origin?: number): void {
    this.#inner.giveBack(credit, origin);
  }

  stopTaking(): void | Promise<void> {
    return this.#inner.stopTaking();
  }

  async close(): Promise<void> {
    this.#forgetAll();
    await this.#inner.close();
  }

  /** A request carried DOWNLOAD_CREDITS: the connection is paced from now on. */
  announce(sender: string, connId: number, credits: number, origin = 0): void {
    const key = windowKey(origin, sender, connId);
    if (this.#windows.has(key)) return;
    if (this.#windows.size >= MAX_WINDOWS) this.#evictIdle();
    this.#windows.set(key, { origin, sender, connId, credits, queue: [], stall: undefined });
  }

  /** A credits notice: the front wrote `bytes` of this connection's replies. False for a connection not paced here. */
  grant(sender: string, connId: number, bytes: number, origin = 0): boolean {
    const w = this.#windows.get(windowKey(origin, sender, connId));
    if (!w) return false;
    w.credits += bytes;
    this.#pump(w);
    return true;
  }

  /** The client went away: what waits for it is dropped (its link credit goes back). */
  forget(sender: string, connId: number, origin = 0): void {
    const key = windowKey(origin, sender, connId);
    const w = this.#windows.get(key);
    if (!w) return;
    this.#windows.delete(key);
    this.#drop(w);
  }

  send(message: Buffer, credit: number, origin = 0): void {
    if (this.#windows.size === 0) return this.#inner.send(message, credit, origin);
    const reply = parseReply(message);
    const w = reply.ids.length === 1 && !reply.extended ? this.#windows.get(windowKey(origin, reply.sender, reply.ids[0]!)) : undefined;
    if (!w) return this.#inner.send(message, credit, origin);
    w.queue.push({ body: reply.body, credit });
    this.#pump(w);
  }

  #pump(w: Window): void {
    while (w.queue.length > 0) {
      const item = w.queue[0]!;
      if (item.body.length === 0) {
        // The close message costs no credits (Mongrel2 counts body bytes) and ends the connection.
        w.queue.shift();
        this.#windows.delete(windowKey(w.origin, w.sender, w.connId));
        this.#drop(w);
        this.#inner.send(encodeReply(w.sender, w.connId), item.credit, w.origin);
        return;
      }
      const n = Math.min(item.body.length, w.credits, PACED_MESSAGE_BYTES);
      // Wait for credits rather than send slivers (each costs the front a write and a notice).
      if (n < Math.min(item.body.length, PACED_MESSAGE_BYTES / 4)) break;
      const last = n === item.body.length;
      w.credits -= n;
      this.#inner.send(encodeReply(w.sender, w.connId, item.body.subarray(0, n)), last ? item.credit : 0, w.origin);
      if (last) w.queue.shift();
      else item.body = item.body.subarray(n);
    }
    clearTimeout(w.stall);
    w.stall = w.queue.length > 0 ? setTimeout(() => this.#stalled(w), this.#opts.stallMs) : undefined;
  }

  #stalled(w: Window): void {
    this.stalled++;
    const waiting = w.queue.reduce((n, q) => n + q.body.length, 0);
    this.#opts.log.warn(
      { connId: w.connId, waitingBytes: waiting, stallMs: this.#opts.stallMs },
      'no download credits came for a paced reply: connection closed (with several processes on one PUSH/SUB Handler, the front may send the credits to another)',
    );
    this.#windows.delete(windowKey(w.origin, w.sender, w.connId));
    this.#drop(w);
    this.#inner.send(encodeReply(w.sender, w.connId), 0, w.origin);
  }

  /** Forgets what the window still holds, returning its link credit. */
  #drop(w: Window): void {
    clearTimeout(w.stall);
    const credit = w.queue.reduce((n, q) => n + q.credit, 0);
    w.queue = [];
    if (credit > 0) this.#inner.giveBack(credit, w.origin);
  }

  /** Every window, or with `origin` only that gateway's. */
  #forgetAll(origin?: number): void {
    for (const [key, w] of this.#windows) {
      if (origin !== undefined && w.origin !== origin) continue;
      this.#windows.delete(key);
      this.#drop(w);
    }
  }

  /** Drops the oldest connection with nothing waiting (or else the oldest). */
  #evictIdle(): void {
    for (const [key, w] of this.#windows) {
      if (w.queue.length === 0) {
        this.#windows.delete(key);
        return;
      }
    }
    const [key, w] = this.#windows.entries().next().value as [string, Window];
    this.#windows.delete(key);
    this.#drop(w);
  }
}

function windowKey(origin: number, sender: string, connId: number): string {
  return `${origin}\0${sender}\0${connId}`;
}
