/**
 * The built-in demo service (used by `npm start`, the tests and the benchmarks).
 * Runs in the worker threads like any user routes module.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { threadId } from 'node:worker_threads';
import { setTimeout as delay } from 'node:timers/promises';
import { defineRoutes, type ServiceRequest, type WebSocketConnection } from './service-routes.js';

function fib(n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

function intParam(value: string | string[] | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const text = Array.isArray(value) ? value[0]! : value;
  return /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
}

const badRequest = (message: string) => ({ status: 400, body: `${message}\n` });

export default defineRoutes({
  /** The trivial route for overhead measurements. */
  'GET /svc/hello': () => 'hello',

  /** Naive Fibonacci on the worker thread: CPU-heavy on purpose. */
  'GET /svc/fib/:n': (req: ServiceRequest) => {
    const n = intParam(req.params.n, Number.NaN);
    if (!(n >= 0 && n <= 45)) return badRequest('n must be an integer from 0 to 45');
    const started = Date.now();
    return { n, fib: fib(n), thread: threadId, started, finished: Date.now() };
  },

  /** SHA-256 of the body, applied `rounds` times (default 1, at most 1,000,000). */
  'POST /svc/hash': (req: ServiceRequest) => {
    const rounds = intParam(req.query.rounds, 1);
    if (!(rounds >= 1 && rounds <= 1_000_000)) return badRequest('rounds must be an integer from 1 to 1000000');
    let digest: Buffer = req.body;
    for (let i = 0; i < rounds; i++) digest = createHash('sha256').update(digest).digest();
    return { sha256: digest.toString('hex'), rounds };
  },

  /**
   * SHA-256 and size of the body, however large: a body the front spooled to its upload
   * store (over limits.content_length) is streamed from its temp file, never held whole.
   */
  'POST /svc/upload': {
    uploads: true,
    timeoutMs: 120_000,
    handler: async (req: ServiceRequest) => {
      const hash = createHash('sha256');
      let bytes = 0;
      if (req.upload === undefined) {
        hash.update(req.body);
        bytes = req.body.length;
      } else {
        for await (const chunk of createReadStream(req.upload.path, { signal: req.signal })) {
          hash.update(chunk as Buffer);
          bytes += (chunk as Buffer).length;
        }
      }
      return { bytes, sha256: hash.digest('hex'), spooled: req.upload !== undefined };
    },
  },

  /**
   * Brubeck's slow echo service: holds its worker thread for `ms` (default
   * 2000, at most 60000), then echoes `data`. Stops early when aborted.
   */
  'GET /svc/slow': {
    timeoutMs: 65_000,
    handler: async (req: ServiceRequest) => {
      const ms = intParam(req.query.ms, 2000);
      if (!(ms >= 0 && ms <= 60_000)) return badRequest('ms must be an integer from 0 to 60000');
      const data = req.query.data;
      await delay(ms, undefined, { signal: req.signal });
      return { data: Array.isArray(data) ? data[0] : (data ?? null) };
    },
  },

  /**
   * A chat room over WebSocket: every text message goes to everyone in the room
   * in one multi-id reply; binary messages are echoed to their sender only.
   */
  'WS /svc/chat': {
    open: (ws: WebSocketConnection) => {
      ws.send(`welcome #${ws.id}`);
      ws.broadcast(`#${ws.id} joined`);
    },
    message: (ws: WebSocketConnection, data: string | Buffer) => {
      if (typeof data !== 'string') return ws.send(data);
      ws.broadcast(`#${ws.id}: ${data}`);
    },
    close: (ws: WebSocketConnection) => ws.broadcast(`#${ws.id} left`),
  },

  /** Echo: each message back to its sender, as it came (text or binary). */
  'WS /svc/echo': { message: (ws: WebSocketConnection, data: string | Buffer) => ws.send(data) },
});
