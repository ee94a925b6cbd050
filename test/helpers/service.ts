// Runs `m2gate service` as a child process for a test (the built CLI in
// dist/: run `npm run build` first), and a fake front: the two sockets a
// Mongrel2 Handler binds (§5.1), driven by the test.
//
// The service's stdout is pino NDJSON, one line per request (route, status, ms,
// waitMs, connId) plus lifecycle lines ('service started', 'connected to the
// front', 'draining', 'service stopped'); the probe routes in
// test/fixtures/routes/ write their own JSON lines there too. Tests await lines
// matching a predicate: events, not sleeps. Every wait also has a deadline so a
// broken service fails the test with the log in the message instead of hanging.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Push, Subscriber } from 'zeromq';
import { encodeDisconnect, encodeRequest, type HeaderEncoding } from '../../protocol/m2-request.js';
import { parseReply, type M2Reply } from '../../protocol/m2-reply.js';
import { ipcEndpoint, startMongrel2, type Mongrel2 } from './mongrel2.js';
import { readJsonLines, type LogLine } from './ndjson.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const M2GATE_BIN = join(ROOT, 'dist', 'cli', 'm2gate.js');
export const DEFAULT_WAIT_MS = 10_000;

/** Absolute path of test/fixtures/routes/<name>. */
export function fixtureRoutes(name: string): string {
  return join(ROOT, 'test', 'fixtures', 'routes', name);
}

/** A fresh temporary directory, removed by {@link stopAll}. */
export function tempDir(prefix = 'm2gate-svc-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/**
 * A file the probe routes wait for (`/t/hold?gate=...` returns once it exists)
 * and beside which they mark what happened (`<gate>.started`, `<gate>.aborted`).
 */
export interface Gate {
  readonly path: string;
  /** `tag=TAG&gate=PATH`, the query string for a probe route. */
  query(tag: string): string;
  /** Lets held handlers return. */
  open(): void;
  /** A handler given this gate started (checked synchronously: see probes.mjs). */
  started(): boolean;
  /** A handler given this gate saw its abort signal. */
  aborted(): boolean;
}

export function gate(): Gate {
  const path = join(tempDir('m2gate-gate-'), 'gate');
  return {
    path,
    query: (tag) => `tag=${encodeURIComponent(tag)}&gate=${encodeURIComponent(path)}`,
    open: () => writeFileSync(path, 'open'),
    started: () => existsSync(`${path}.started`),
    aborted: () => existsSync(`${path}.aborted`),
  };
}

/** One stdout line: a parsed JSON object, or `{ raw }` for anything else. */
export type { LogLine } from './ndjson.js';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WaitOptions {
  /** Deadline for the wait. Defaults to DEFAULT_WAIT_MS. */
  timeoutMs?: number;
  /** Only lines with this index or later count (see `lines.length`). Defaults to 0. */
  from?: number;
}

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every stdout line so far, in order. */
  readonly lines: LogLine[];
  stderr(): string;
  /** Resolves with the first line (seen or future) matching `pred`; rejects on exit or deadline. */
  waitFor(pred: (line: LogLine) => boolean, options?: WaitOptions): Promise<LogLine>;
  /** Resolves once `n` lines match `pred`, with those lines. */
  waitForCount(pred: (line: LogLine) => boolean, n: number, options?: WaitOptions): Promise<LogLine[]>;
  /** Lines matching `pred` so far. */
  filter(pred: (line: LogLine) => boolean): LogLine[];
  /** Resolves when the service logs 'connected to the front'. */
  ready(): Promise<LogLine>;
  readonly exited: Promise<Exit>;
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
}

const children = new Set<ChildProcess>();
const dirs: string[] = [];
const closers: Array<() => void> = [];
const fronts: Mongrel2[] = [];

export const isMsg = (msg: string) => (line: LogLine) => line.msg === msg;
export const isProbe = (probe: string, tag: string) => (line: LogLine) => line.probe === probe && line.tag === tag;
/** The service's per-request log line, optionally for one connection id. */
export const isRequestLog = (connId?: number) => (line: LogLine) =>
  line.msg === 'request' && (connId === undefined || line.connId === connId);

// A test runner that dies still takes its services with it.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function context(lines: LogLine[], stderr: string): string {
  const tail = lines.slice(-30).map((l) => (l.raw ?? JSON.stringify(l)));
  return `\n--- last stdout lines ---\n${tail.join('\n')}\n--- stderr ---\n${stderr}`;
}

/** Spawns `node dist/cli/m2gate.js service ...args` (killed by {@link stopAll} if still running). */
export function spawnService(args: string[], options: { env?: Record<string, string> } = {}): ServiceProcess {
  const child = spawn(process.execPath, [M2GATE_BIN, 'service', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const lines: LogLine[] = [];
  let stderr = '';
  let exit: Exit | undefined;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of [...listeners]) l();
  };
  readJsonLines(child.stdout, (line) => lines.push(line), notify);
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  // 'close' (not 'exit'): stdout and stderr have been read to the end by then.
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      children.delete(child);
      exit = { code, signal };
      notify();
      resolve(exit);
    });
  });

  const waitForCount = (pred: (line: LogLine) => boolean, n: number, opts: WaitOptions = {}): Promise<LogLine[]> => {
    const from = opts.from ?? 0;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_MS;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined = undefined;
      const check = (): void => {
        const found = lines.slice(from).filter(pred);
        if (found.length >= n) {
          finish();
          resolve(found.slice(0, n));
        } else if (exit) {
          finish();
          reject(new Error(`service exited (${JSON.stringify(exit)}) after ${found.length} of ${n} awaited lines${context(lines, stderr)}`));
        }
      };
      const finish = (): void => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${n} matching lines within ${timeoutMs} ms${context(lines, stderr)}`));
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  };

  const proc: ServiceProcess = {
    child,
    pid: child.pid!,
    lines,
    stderr: () => stderr,
    waitForCount,
    waitFor: async (pred, opts) => (await waitForCount(pred, 1, opts))[0]!,
    filter: (pred) => lines.filter(pred),
    ready: () => proc.waitFor(isMsg('connected to the front')),
    exited,
    async stop(signal = 'SIGTERM') {
      if (!exit) child.kill(signal);
      return exited;
    },
  };
  return proc;
}

/** Spawns a service and waits until it is connected to the front. */
export async function startService(args: string[], options: { env?: Record<string, string> } = {}): Promise<ServiceProcess> {
  const svc = spawnService(args, options);
  await svc.ready();
  return svc;
}

export interface CliResult extends Exit {
  stdout: string;
  stderr: string;
}

/**
 * Runs `node dist/cli/m2gate.js ...args` to completion. Kills it (and rejects)
 * after `timeoutMs` (default DEFAULT_WAIT_MS): a command that should exit must not hang a test.
 */
export function runCli(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [M2GATE_BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`m2gate ${args.join(' ')} did not exit within ${options.timeoutMs ?? DEFAULT_WAIT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? DEFAULT_WAIT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * The fake front: binds what a Mongrel2 Handler binds (§5.1), a PUSH the service
 * pulls requests from (`send`) and a SUB it publishes replies to (`recv`).
 */
export interface FakeFront {
  /** For `--send`. */
  readonly send: string;
  /** For `--recv`. */
  readonly recv: string;
  readonly sender: string;
  /** Pushes raw bytes, once a service's PULL is connected (rejects after DEFAULT_WAIT_MS). */
  push(message: Buffer): Promise<void>;
  /** Pushes a request built with encodeRequest. `headers` are added to METHOD/VERSION/PATH/URI. */
  request(connId: number, path: string, init?: RequestInit): Promise<void>;
  /** Pushes Mongrel2's disconnect notice for `connId` (§3.6). */
  disconnect(connId: number, encoding?: HeaderEncoding): Promise<void>;
  /** The next message the service published, raw. */
  nextRaw(): Promise<Buffer>;
  /** The next message the service published, parsed. */
  next(): Promise<M2Reply>;
  /** Messages received and not yet taken. */
  readonly pending: number;
  close(): void;
}

export interface RequestInit {
  method?: string;
  version?: string;
  query?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  encoding?: HeaderEncoding;
}

export const FRONT_SENDER = '54c9a8d7-0000-4000-8000-00000000fake';

export async function fakeFront(sender = FRONT_SENDER): Promise<FakeFront> {
  const send = ipcEndpoint('send');
  const recv = ipcEndpoint('recv');
  const push = new Push();
  const sub = new Subscriber();
  sub.subscribe();
  // Only a service's PULL completes a handshake with the PUSH. Sending before
  // that leaves a send pending until a peer attaches; one such send never
  // finished (once, under load), so requests wait for the handshake instead.
  const pullConnected = new Promise<void>((resolve) => push.events.on('handshake', () => resolve()));
  await push.bind(send);
  await sub.bind(recv);
  const deliver = async (message: Buffer): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no service took a request within ${DEFAULT_WAIT_MS} ms`)), DEFAULT_WAIT_MS);
    });
    try {
      await Promise.race([pullConnected.then(() => push.send(message)), deadline]);
    } finally {
      clearTimeout(timer);
    }
  };
  const received: Buffer[] = [];
  const waiters: Array<{ resolve: (b: Buffer) => void; reject: (err: Error) => void }> = [];
  let failure: Error | undefined;
  let closed = false;
  void (async () => {
    try {
      for await (const [frame] of sub) {
        const waiter = waiters.shift();
        if (waiter) waiter.resolve(frame!);
        else received.push(frame!);
      }
    } catch (err) {
      // Only closing ends the loop quietly; anything else fails the waiting test.
      if (closed) return;
      failure = new Error(`fake front receive loop failed: ${String(err)}`);
      for (const waiter of waiters.splice(0)) waiter.reject(failure);
    }
  })();
  const nextRaw = (): Promise<Buffer> => {
    const ready = received.shift();
    if (ready) return Promise.resolve(ready);
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (b: Buffer): void => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (err: Error): void => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`no reply within ${DEFAULT_WAIT_MS} ms`));
      }, DEFAULT_WAIT_MS);
      waiters.push(waiter);
    });
  };
  const front: FakeFront = {
    send,
    recv,
    sender,
    push: deliver,
    request(connId, path, init = {}) {
      const query = init.query ?? '';
      const method = init.method ?? 'GET';
      const headers = {
        PATH: path,
        'x-forwarded-for': '127.0.0.1',
        host: 'localhost',
        METHOD: method,
        VERSION: init.version ?? 'HTTP/1.1',
        URI: query ? `${path}?${query}` : path,
        ...(query ? { QUERY: query } : {}),
        PATTERN: '/',
        ...init.headers,
      };
      return deliver(encodeRequest({ sender, connId, path, headers, body: init.body ?? '' }, init.encoding ?? 'json'));
    },
    disconnect: (connId, encoding = 'json') => deliver(encodeDisconnect(sender, connId, encoding)),
    nextRaw,
    next: async () => parseReply(await nextRaw()),
    get pending() {
      return received.length;
    },
    close() {
      if (closed) return;
      closed = true;
      push.close();
      sub.close();
      removeIpcDirs(send, recv);
    },
  };
  closers.push(() => front.close());
  return front;
}

/** A real Mongrel2 whose route sends everything to one Handler, for services to connect to. */
export interface Mongrel2Front {
  readonly m2: Mongrel2;
  /** For `--send`. */
  readonly send: string;
  /** For `--recv`. */
  readonly recv: string;
  /** The Handler's send_ident: the SENDER of every request. */
  readonly sender: string;
  /** `http://127.0.0.1:PORT` */
  readonly base: string;
}

/** Starts a real Mongrel2 with one Handler on `route` (default '/'); stopped by {@link stopAll}. */
export async function mongrel2Front(options: { route?: string; protocol?: HeaderEncoding; sender?: string } = {}): Promise<Mongrel2Front> {
  const send = ipcEndpoint('send');
  const recv = ipcEndpoint('recv');
  const sender = options.sender ?? '54c9a8d7-0000-4000-8000-0000mongrel2';
  const m2 = await startMongrel2({ handlers: [{ route: options.route ?? '/', sendSpec: send, sendIdent: sender, recvSpec: recv, protocol: options.protocol ?? 'json' }] });
  fronts.push(m2);
  closers.push(() => removeIpcDirs(send, recv));
  return { m2, send, recv, sender, base: `http://127.0.0.1:${m2.port}` };
}

/** A fresh ipc:// endpoint whose directory {@link stopAll} removes. */
export function endpoint(name: string): string {
  const spec = ipcEndpoint(name);
  closers.push(() => removeIpcDirs(spec));
  return spec;
}

/** ipcEndpoint() makes a directory per endpoint. */
function removeIpcDirs(...specs: string[]): void {
  for (const spec of specs) rmSync(dirname(spec.slice('ipc://'.length)), { recursive: true, force: true });
}

/** Kills every child still running (SIGKILL), closes fake fronts, stops Mongrel2 fronts, removes temp dirs. For after(). */
export async function stopAll(): Promise<void> {
  const exits = [...children].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('close', () => resolve());
        child.kill('SIGKILL');
      }),
  );
  await Promise.all(exits);
  for (const m2 of fronts.splice(0)) {
    await m2.stop();
    m2.cleanup();
  }
  for (const close of closers.splice(0)) close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Splits a raw HTTP/1.1 response (as a reply body carries it) into status, headers, body. */
export function parseHttp(bytes: Buffer): { status: number; headers: Record<string, string>; body: string } {
  const text = bytes.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no end of head in ${JSON.stringify(text)}`);
  const [statusLine, ...fields] = text.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
  const headers: Record<string, string> = {};
  for (const field of fields) {
    const colon = field.indexOf(':');
    headers[field.slice(0, colon).toLowerCase()] = field.slice(colon + 1).trim();
  }
  return { status, headers, body: bytes.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1')).toString('utf8') };
}
