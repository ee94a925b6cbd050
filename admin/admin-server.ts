/**
 * The admin listener: /metrics (Prometheus text), /status.json, /healthz,
 * /readyz and the dashboard page. It is a node:http server of its own so
 * that nothing of it is reachable on the public port, and nothing on the
 * public port (hygiene rules, drain) has to know about it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../cli/package-root.js';

export interface Readiness {
  ready: boolean;
  /** Why not, one line each; empty when ready. */
  reasons: string[];
}

/** What a process (gateway or service) shows on its admin listener. */
export interface AdminSource {
  /** Prometheus exposition and its content type. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** /status.json, or undefined where the process has no dashboard (a service). */
  status?(): unknown;
  readiness(): Readiness;
}

export interface AdminAddress {
  host: string;
  port: number;
}

/** `HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1); `[::1]:PORT` for IPv6. */
export function parseAdminAddress(text: string): AdminAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(`--admin must be HOST:PORT with a port in 0..65535, got '${text}'`);
  }
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

const PAGE_FILES: Record<string, string> = {
  '/': 'index.html',
  '/dashboard.js': 'dashboard.js',
  '/dashboard.css': 'dashboard.css',
};
const PAGE_TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

/** The page's three files, read once: they are small and ship with the package. */
function loadPage(): Map<string, Buffer> {
  const dir = join(packageRoot(), 'public', 'admin');
  const files = new Map<string, Buffer>();
  for (const name of new Set(Object.values(PAGE_FILES))) files.set(name, readFileSync(join(dir, name)));
  return files;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, head: boolean): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': bytes.length,
    // Numbers change every second; a cached copy would mislead.
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(head ? undefined : bytes);
}

export class AdminServer {
  readonly #server: Server;
  readonly #source: AdminSource;
  readonly #page: Map<string, Buffer> | undefined;
  readonly #onError: (err: unknown) => void;

  constructor(source: AdminSource, onError: (err: unknown) => void = () => {}) {
    this.#source = source;
    this.#onError = onError;
    this.#page = source.status ? loadPage() : undefined;
    this.#server = createServer((req, res) => {
      this.#serve(req, res).catch((err: unknown) => {
        this.#onError(err);
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'admin error\n', false);
        else res.destroy();
      });
    });
    // An admin scrape is short; keep-alive sockets must not hold up close().
    this.#server.keepAliveTimeout = 5_000;
  }

  async listen(addr: AdminAddress): Promise<AdminAddress> {
    this.#server.listen(addr.port, addr.host);
    await Promise.race([once(this.#server, 'listening'), once(this.#server, 'error').then(([err]) => Promise.reject(err as Error))]);
    const bound = this.#server.address() as AddressInfo;
    return { host: bound.address, port: bound.port };
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = once(this.#server, 'close');
    this.#server.close();
    this.#server.closeAllConnections();
    await closed;
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', false);
      return;
    }
    switch (path) {
      case '/metrics': {
        const { contentType, body } = await this.#source.metrics();
        send(res, 200, contentType, body, head);
        return;
      }
      case '/healthz':
        // Liveness: this event loop answers. Kubernetes restarts on failure, so nothing else belongs here.
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n', head);
        return;
      case '/readyz': {
        const r = this.#source.readiness();
        send(res, r.ready ? 200 : 503, 'text/plain; charset=utf-8', r.ready ? 'ready\n' : `not ready\n${r.reasons.map((x) => `- ${x}\n`).join('')}`, head);
        return;
      }
      case '/status.json':
        if (this.#source.status) {
          send(res, 200, 'application/json; charset=utf-8', JSON.stringify(this.#source.status()), head);
          return;
        }
        break;
      default: {
        const file = PAGE_FILES[path];
        const bytes = file ? this.#page?.get(file) : undefined;
        if (file && bytes) {
          send(res, 200, PAGE_TYPES[file]!, bytes, head);
          return;
        }
      }
    }
    send(res, 404, 'text/plain; charset=utf-8', 'not found: the admin listener serves /, /metrics, /status.json, /healthz, /readyz\n', head);
  }
}
