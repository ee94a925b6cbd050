// The standalone gateway under test, and the things around it:
// - startGateway: a Gateway in-process, from a mongrel2.conf text written to a temp dir
//   (Dir bases resolve there), listening on port 0, logging nothing;
// - fakeHandler: a Mongrel2 handler driven by the test (PULL connected to the Handler's
//   send_spec, PUB to its recv_spec, §5.1), ready once the gateway's pool has seen it;
// - RawClient: one TCP connection that writes raw request bytes and reads responses
//   one at a time, so framing, keep-alive, pipelining and closes are visible;
// - spawnM2gate: `node dist/cli/m2gate.js ...` with its NDJSON log lines awaitable.
// Every wait has a deadline, so a broken gateway fails the test instead of hanging it.
import type { AccessLog } from '../../gateway/access-log.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { Publisher, Pull } from 'zeromq';
import { Gateway } from '../../gateway/gateway.js';
import type { HandlerTarget } from '../../gateway/handler/index.js';
import { findServer, parseConfig } from '../../protocol/mongrel2-conf.js';
import { parseRequest, type HeaderEncoding, type M2Request } from '../../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../../protocol/m2-reply.js';
import { ipcEndpoint } from './mongrel2.js';
import { M2GATE_BIN, ROOT } from './service.js';
import { readJsonLines, type LogLine } from './ndjson.js';
import { untilCheck } from './until.js';

export const WAIT_MS = 10_000;

function deadline<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

// ---- configuration --------------------------------------------------------------------------

export interface HandlerConf {
  route: string;
  sendSpec: string;
  sendIdent: string;
  recvSpec: string;
  recvIdent?: string;
  protocol?: HeaderEncoding;
  /** 'link': the m2gate link (a ROUTER on send_spec). */
  transport?: 'link';
}

/** A Handler on fresh ipc:// endpoints. */
export function handlerConf(route: string, sendIdent: string, protocol: HeaderEncoding = 'json'): HandlerConf {
  return { route, sendSpec: ipcEndpoint('send'), recvSpec: ipcEndpoint('recv'), sendIdent, protocol };
}

export interface ConfOptions {
  handlers?: HandlerConf[];
  /** Extra route lines, e.g. `'/static/': Dir(base='www/', index_file='index.html', default_ctype='text/plain')`. */
  routes?: string[];
  settings?: Record<string, string | number>;
}

/** A one-server, one-host (`localhost`, the default host) mongrel2.conf. */
export function confText(opts: ConfOptions): string {
  const handlers = (opts.handlers ?? []).map(
    (h, i) =>
      `h${i} = Handler(send_spec='${h.sendSpec}', send_ident='${h.sendIdent}', recv_spec='${h.recvSpec}', recv_ident='${h.recvIdent ?? ''}', protocol='${h.protocol ?? 'json'}'${h.transport ? `, transport='${h.transport}'` : ''})`,
  );
  const routes = [...(opts.handlers ?? []).map((h, i) => `'${h.route}': h${i}`), ...(opts.routes ?? [])];
  const settings = { 'server.daemonize': 0, ...opts.settings };
  return `${handlers.join('\n')}
main = Server(uuid="a7e0c1d2-0000-4000-8000-0000gateway0", name="test", port=6767, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid",
  default_host="localhost", hosts=[Host(name="localhost", routes={ ${routes.join(', ')} })])
settings = { ${Object.entries(settings)
    .map(([k, v]) => `"${k}": ${typeof v === 'number' ? String(v) : `"${String(v)}"`}`)
    .join(', ')} }
servers = [main]
`;
}

/** A fresh temp directory with `files` written into it (paths relative to it). */
export function tempTree(files: Record<string, string | Buffer> = {}, prefix = 'm2gate-gw-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

// ---- the gateway in-process -----------------------------------------------------------------

export interface GatewayRig {
  gateway: Gateway;
  port: number;
  /** The config's directory: Dir bases are relative to it. */
  dir: string;
  /** The handler pool serving `route` (throws if none). */
  pool(route: string): HandlerTarget;
  /** A new raw connection to the gateway. */
  client(): Promise<RawClient>;
  close(): Promise<void>;
}

export interface GatewayRigOptions {
  /** Directory to write mongrel2.conf into (default: a fresh temp dir, removed by close()). */
  dir?: string;
  /** Default: silent. See {@link logCapture}. */
  logger?: Logger;
  handlerTimeoutMs?: number;
  drainTimeoutMs?: number;
  /** The client timeouts (the CLI's --headers-timeout and --request-timeout). */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  accessLog?: AccessLog;
  /** An app module's default export (GatewayOptions.app). */
  app?: unknown;
}

export async function startGateway(conf: ConfOptions, options: GatewayRigOptions = {}): Promise<GatewayRig> {
  const text = confText(conf);
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? tempTree();
  const file = join(dir, 'mongrel2.conf');
  writeFileSync(file, text);
  const config = parseConfig(text, file);
  const gateway = new Gateway({
    config,
    server: findServer(config),
    cwd: dir,
    port: 0,
    host: '127.0.0.1',
    logger: options.logger ?? pino({ level: 'silent' }),
    ...(options.handlerTimeoutMs !== undefined ? { handlerTimeoutMs: options.handlerTimeoutMs } : {}),
    ...(options.drainTimeoutMs !== undefined ? { drainTimeoutMs: options.drainTimeoutMs } : {}),
    ...(options.headersTimeoutMs !== undefined ? { headersTimeoutMs: options.headersTimeoutMs } : {}),
    ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
    accessLog: options.accessLog,
    ...(options.app !== undefined ? { app: options.app } : {}),
  });
  const port = await gateway.start();
  const clients: RawClient[] = [];
  return {
    gateway,
    port,
    dir,
    pool(route) {
      const h = (conf.handlers ?? []).find((c) => c.route === route);
      const pool = gateway.pools.find((p) => h !== undefined && p.config.sendSpec === h.sendSpec);
      if (!pool) throw new Error(`no handler pool for route ${route}`);
      return pool;
    },
    async client() {
      const c = await RawClient.open(port);
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.destroy();
      await gateway.close();
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A logger whose lines the test can await (e.g. the pool's 'handler disconnected'). */
export interface LogCapture {
  logger: Logger;
  readonly lines: LogLine[];
  /** The first line (seen or future) matching `pred`, counting from line index `from`. */
  waitFor(pred: (line: LogLine) => boolean, what: string, from?: number): Promise<LogLine>;
}

export function logCapture(): LogCapture {
  const lines: LogLine[] = [];
  const listeners = new Set<() => void>();
  const logger = pino(
    { level: 'info' },
    {
      write(text: string) {
        lines.push(JSON.parse(text) as LogLine);
        for (const l of [...listeners]) l();
      },
    },
  );
  return {
    logger,
    lines,
    waitFor(pred, what, from = 0) {
      let check: () => void = () => {};
      const found = new Promise<LogLine>((resolve) => {
        check = () => {
          const line = lines.slice(from).find(pred);
          if (line) {
            listeners.delete(check);
            resolve(line);
          }
        };
        listeners.add(check);
        check();
      });
      return deadline(found, `log line '${what}'`).finally(() => listeners.delete(check));
    },
  };
}

// ---- a fake Mongrel2 handler ----------------------------------------------------------------

export interface Received {
  raw: Buffer;
  msg: M2Request;
}

export interface FakeHandler {
  readonly sender: string;
  /** The next request the gateway pushed (not a `@*` notice). */
  next(what?: string): Promise<Received>;
  /** The next `@*` notice the gateway pushed (a disconnect, §3.6 and §4.6), in order. */
  notice(what?: string): Promise<Received>;
  /** Requests received and not yet taken. */
  readonly queued: number;
  /** Notices received and not yet taken. */
  readonly noticesQueued: number;
  /** Publishes a reply (`body` empty = close, §4.3) as `sender` (default: the Handler's send_ident). */
  reply(ids: number | number[], body: string | Buffer, sender?: string): Promise<void>;
  close(ids: number | number[]): Promise<void>;
  /** Publishes raw bytes. */
  publish(bytes: Buffer): Promise<void>;
  stop(): void;
}

/**
 * Connects a handler to `h`'s endpoints and resolves once the gateway has seen its PULL (the
 * in-process pool's `whenPeer`, or for a gateway in another process a promise the caller
 * derives from it, e.g. its 'handler connected' log line) and its PUB has finished the ZMTP
 * handshake.
 */
export async function fakeHandler(h: HandlerConf, peerSeen: HandlerTarget | (() => Promise<unknown>)): Promise<FakeHandler> {
  const pull = new Pull();
  const pub = new Publisher();
  const pubReady = new Promise((resolve) => pub.events.on('handshake', resolve));
  const pullReady = new Promise((resolve) => pull.events.on('handshake', resolve));
  pull.connect(h.sendSpec);
  pub.connect(h.recvSpec);
  const seen = typeof peerSeen === 'function' ? peerSeen() : peerSeen.whenPeer();
  await deadline(Promise.all([pubReady, pullReady, seen]), 'fake handler connecting');
  // Requests and notices queue apart: a test awaiting a request is not handed the notice a
  // reply to a gone id produced (§4.6), and one awaiting a notice sees them in order.
  const requests = inbox();
  const notices = inbox();
  let stopped = false;
  void (async () => {
    try {
      for await (const [frame] of pull) {
        const r = { raw: frame!, msg: parseRequest(frame!) };
        (r.msg.path === '@*' ? notices : requests).put(r);
      }
    } catch (err) {
      if (!stopped) throw err;
    }
  })();
  return {
    sender: h.sendIdent,
    next: (what = 'handler request') => requests.take(what),
    notice: (what = 'handler notice') => notices.take(what),
    get queued() {
      return requests.size;
    },
    get noticesQueued() {
      return notices.size;
    },
    reply: (ids, body, sender = h.sendIdent) => pub.send(encodeReply(sender, ids, body)),
    close: (ids) => pub.send(encodeClose(h.sendIdent, ids)),
    publish: (bytes) => pub.send(bytes),
    stop() {
      stopped = true;
      pull.close();
      pub.close();
    },
  };
}

/** A queue of received messages that callers await in order, each bounded by `deadline`. */
function inbox(): { put(r: Received): void; take(what: string): Promise<Received>; readonly size: number } {
  const received: Received[] = [];
  const waiters: Array<(r: Received) => void> = [];
  return {
    put(r) {
      const waiter = waiters.shift();
      if (waiter) waiter(r);
      else received.push(r);
    },
    take(what) {
      const ready = received.shift();
      if (ready) return Promise.resolve(ready);
      let waiter: ((r: Received) => void) | undefined;
      const got = new Promise<Received>((resolve) => {
        waiter = resolve;
        waiters.push(resolve);
      });
      return deadline(got, what).catch((err: unknown) => {
        waiters.splice(waiters.indexOf(waiter!), 1);
        throw err;
      });
    },
    get size() {
      return received.length;
    },
  };
}

// ---- raw HTTP client ------------------------------------------------------------------------

export interface RawResponse {
  status: number;
  reason: string;
  /** Lower-cased names; repeated names joined with ', '. */
  headers: Record<string, string>;
  body: Buffer;
  /** The whole response as it came off the wire. */
  raw: Buffer;
}

/**
 * One client connection. Responses are read in order with `response()`; the bytes that
 * follow the last read response stay buffered, so `rest()` shows anything extra.
 */
export class RawClient {
  readonly socket: Socket;
  #buf = Buffer.alloc(0);
  #ended = false;
  #listeners = new Set<() => void>();
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#notify();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.#ended = true;
        this.#notify();
        resolve();
      }),
    );
    socket.once('end', () => {
      this.#ended = true;
      this.#notify();
    });
  }

  static async open(port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    await deadline(new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject)), 'connect');
    return new RawClient(socket);
  }

  /** True once the server closed its side (or the socket closed). */
  get ended(): boolean {
    return this.#ended;
  }

  write(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** Bytes received and not consumed by response(). */
  rest(): Buffer {
    return this.#buf;
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }

  /** Waits until `check` returns a value (re-run on every data/end event). */
  #until<T>(check: () => T | undefined, what: string): Promise<T> {
    return deadline(untilCheck(this.#listeners, check), what);
  }

  /** The next complete response. `head`: it answers a HEAD request (no body whatever the headers say). */
  response(options: { head?: boolean } = {}): Promise<RawResponse> {
    return this.#until(() => {
      const parsed = parseResponse(this.#buf, this.#ended, options.head ?? false);
      if (parsed === undefined) {
        if (this.#ended) throw new Error(`connection ended inside a response: ${JSON.stringify(this.#buf.toString('latin1'))}`);
        return undefined;
      }
      this.#buf = this.#buf.subarray(parsed.length);
      return parsed.response;
    }, 'response');
  }

  /** Resolves once the unread bytes contain `text` (latin1), without consuming them. */
  seen(text: string): Promise<void> {
    return this.#until(() => {
      if (this.#buf.includes(text, 0, 'latin1')) return true;
      if (this.#ended) throw new Error(`connection ended before ${JSON.stringify(text)} arrived: ${JSON.stringify(this.#buf.toString('latin1'))}`);
      return undefined;
    }, `bytes ${JSON.stringify(text)}`).then(() => undefined);
  }

  /** Resolves when the server has closed the connection (with whatever bytes are left unread). */
  async end(): Promise<Buffer> {
    await this.#until(() => (this.#ended ? true : undefined), 'connection close');
    return this.#buf;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Parses one response at the start of `buf`; undefined while incomplete. */
function parseResponse(buf: Buffer, ended: boolean, head: boolean): { response: RawResponse; length: number } | undefined {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const lines = buf.toString('latin1', 0, headEnd).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]!);
  if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
  const status = Number(m[1]);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const start = headEnd + 4;
  let body: Buffer;
  let end: number;
  if (head || status === 204 || status === 304) {
    body = Buffer.alloc(0);
    end = start;
  } else if (headers['transfer-encoding'] !== undefined) {
    const parts: Buffer[] = [];
    let p = start;
    for (;;) {
      const nl = buf.indexOf('\r\n', p);
      if (nl < 0) return undefined;
      const size = parseInt(buf.toString('latin1', p, nl), 16);
      if (size === 0) {
        const trailerEnd = buf.indexOf('\r\n', nl + 2);
        if (trailerEnd < 0) return undefined;
        end = trailerEnd + 2;
        break;
      }
      if (buf.length < nl + 2 + size + 2) return undefined;
      parts.push(buf.subarray(nl + 2, nl + 2 + size));
      p = nl + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    end = start + Number(headers['content-length']);
    if (buf.length < end) return undefined;
    body = buf.subarray(start, end);
  } else {
    if (!ended) return undefined;
    end = buf.length;
    body = buf.subarray(start);
  }
  return { response: { status, reason: m[2]!, headers, body: Buffer.from(body), raw: Buffer.from(buf.subarray(0, end)) }, length: end };
}

/** One request on a fresh connection; resolves with its response. */
export async function exchange(port: number, bytes: string | Buffer, options: { head?: boolean } = {}): Promise<RawResponse> {
  const c = await RawClient.open(port);
  try {
    c.write(bytes);
    return await c.response(options);
  } finally {
    c.destroy();
  }
}

/** `GET path` (HTTP/1.1, Host: localhost, Connection: close) on a fresh connection. */
export function get(port: number, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return exchange(port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${extra}Connection: close\r\n\r\n`);
}

// ---- the CLI as a child process -------------------------------------------------------------

export type { LogLine } from './ndjson.js';

export interface LoggedProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  stderr(): string;
  /** The first stdout line (seen or future) matching `pred`; rejects on exit or deadline. */
  waitFor(pred: (line: LogLine) => boolean, what: string): Promise<LogLine>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(): void;
}

/** Spawns `node dist/cli/m2gate.js ...args` in `cwd` (default: the package root). Run `npm run build` first. */
export function spawnM2gate(args: string[], options: { cwd?: string; env?: Record<string, string>; detached?: boolean } = {}): LoggedProcess {
  return spawnLogged(process.execPath, [M2GATE_BIN, ...args], options);
}

/** Spawns `command`, collecting stdout as JSON lines (others as `{ raw }`). */
export function spawnLogged(command: string, args: string[], options: { cwd?: string; env?: Record<string, string>; detached?: boolean } = {}): LoggedProcess {
  const name = command === process.execPath ? 'm2gate' : command;
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so a test can signal the group as a terminal's Ctrl-C does.
    detached: options.detached ?? false,
  });
  const lines: LogLine[] = [];
  let stderr = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of [...listeners]) l();
  };
  readJsonLines(child.stdout, (line) => lines.push(line), notify);
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      exit = { code, signal };
      notify();
      resolve(exit);
    }),
  );
  const describe = (): string => `\n--- stdout ---\n${lines.map((l) => l.raw ?? JSON.stringify(l)).join('\n')}\n--- stderr ---\n${stderr}`;
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    kill() {
      if (!exit) child.kill('SIGKILL');
    },
    waitFor(pred, what) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`${name}: no '${what}' line within ${WAIT_MS} ms${describe()}`));
        }, WAIT_MS);
        const check = (): void => {
          const found = lines.find(pred);
          if (found) {
            clearTimeout(timer);
            listeners.delete(check);
            resolve(found);
          } else if (exit) {
            clearTimeout(timer);
            listeners.delete(check);
            reject(new Error(`${name} exited (${JSON.stringify(exit)}) before '${what}'${describe()}`));
          }
        };
        listeners.add(check);
        check();
      });
    },
  };
}
