// What the m2gate link tests (test/link-*.test.ts) drive and watch:
// - linkConfText / startLinkGateway: a mongrel2.conf whose '/svc/' Handler has transport='link'
//   on a tcp:// endpoint from freePort(), and a Gateway in-process on it with its log captured;
// - FakeService: a DEALER the test drives by hand, speaking protocol/m2gate-link.md to a gateway;
// - FakeRouter: a ROUTER the test drives by hand, the gateway's end, for a real Service;
// - Recorder: a growing list of events (messages, log lines) with awaitable matches;
// - spawnCli: `node dist/cli/m2gate.js ...` with its NDJSON log lines awaitable by predicate
//   and start index, checked incrementally (a load test writes thousands of lines);
// - loadLoop: C concurrent undici loops with per-request start/end/status, until stopped.
// Every wait has a deadline, so a broken link fails the test instead of hanging it.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Dealer, Router } from 'zeromq';
import { Pool } from 'undici';
import { Gateway } from '../../gateway/gateway.js';
import { LinkPool, type LinkOptions } from '../../gateway/handler/index.js';
import { decodeBatchItem, decodeLink, encodeLink, type LinkMessage } from '../../protocol/link-frames.js';
import { findServer, parseConfig } from '../../protocol/mongrel2-conf.js';
import { encodeRequest, parseRequest, type HeaderEncoding, type M2Request } from '../../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../../protocol/m2-reply.js';
import { logCapture, RawClient, tempTree, type LogCapture } from './gateway.js';
import { freePort } from './net.js';
import { fixtureRoutes, M2GATE_BIN, ROOT } from './service.js';
import { pathToFileURL } from 'node:url';
import { Service } from '../../workers/service.js';
import { readJsonLines, type LogLine } from './ndjson.js';
import { BroadcastChannel } from 'node:worker_threads';

export const LINK_WAIT_MS = 10_000;
export const LINK_IDENT = '6c1f0e2a-0000-4000-8000-00000000link';

/** Rejects with `what` unless `promise` settles within `ms`. */
export function deadline<T>(promise: Promise<T>, what: string, ms = LINK_WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * Re-checks `check` every few ms until it returns something other than undefined. Only for
 * state with no event of its own (a pool's queue length); the deadline is a failure guard.
 */
export async function until<T>(check: () => T | undefined, what: string, ms = LINK_WAIT_MS): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// ---- events -------------------------------------------------------------------------------

export class Recorder<T> {
  readonly items: T[] = [];
  readonly #listeners = new Set<() => void>();
  /** Indices handed out by take(). */
  readonly #taken = new Set<number>();

  push(item: T): void {
    this.items.push(item);
    for (const l of [...this.#listeners]) l();
  }

  /** Re-runs `check` on every push until it returns a value. */
  when<R>(check: () => R | undefined, what: string, ms = LINK_WAIT_MS): Promise<R> {
    let listener: () => void = () => {};
    const found = new Promise<R>((resolve) => {
      listener = () => {
        const v = check();
        if (v !== undefined) {
          this.#listeners.delete(listener);
          resolve(v);
        }
      };
      this.#listeners.add(listener);
      listener();
    });
    return deadline(found, what, ms).finally(() => this.#listeners.delete(listener));
  }

  /** The first item (seen or future) at index `from` or later matching `pred`. */
  waitFor(pred: (item: T) => boolean, what: string, from = 0, ms = LINK_WAIT_MS): Promise<T> {
    return this.when(() => this.items.slice(from).find(pred), what, ms);
  }

  /** The first matching item not taken before, then taken. */
  take(pred: (item: T) => boolean, what: string, ms = LINK_WAIT_MS): Promise<T> {
    return this.when(
      () => {
        const i = this.items.findIndex((item, j) => !this.#taken.has(j) && pred(item));
        if (i < 0) return undefined;
        this.#taken.add(i);
        return this.items[i]!;
      },
      what,
      ms,
    );
  }

  count(pred: (item: T) => boolean, from = 0): number {
    let n = 0;
    for (let i = from; i < this.items.length; i++) if (pred(this.items[i]!)) n++;
    return n;
  }
}

// ---- configuration and an in-process gateway ----------------------------------------------

export async function linkEndpoint(): Promise<string> {
  return `tcp://127.0.0.1:${await freePort()}`;
}

export interface LinkConf {
  /** The link's ROUTER endpoint. */
  sendSpec: string;
  sendIdent?: string;
  protocol?: HeaderEncoding;
  /** Defaults to '/svc/'. */
  route?: string;
  /** Settings besides server.daemonize = 0. */
  settings?: Record<string, string | number>;
}

/** A one-server mongrel2.conf whose one Handler (on `route`) uses the m2gate link. */
export function linkConfText(c: LinkConf): string {
  // recv_spec is not used by the link but the Handler must name one (m2sh requires it).
  return `svc = Handler(send_spec='${c.sendSpec}', send_ident='${c.sendIdent ?? LINK_IDENT}', recv_spec='tcp://127.0.0.1:1', recv_ident='', protocol='${c.protocol ?? 'json'}', transport='link')
main = Server(uuid="6c1f0e2a-0000-4000-8000-0000000server", name="link", port=6767, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid",
  default_host="localhost", hosts=[Host(name="localhost", routes={ '${c.route ?? '/svc/'}': svc })])
settings = { ${Object.entries({ 'server.daemonize': 0, ...c.settings })
    .map(([k, v]) => `"${k}": ${typeof v === 'number' ? String(v) : `"${String(v)}"`}`)
    .join(', ')} }
servers = [main]
`;
}

/** Writes linkConfText(c) into a fresh temp dir; returns the file's path. */
export function writeLinkConf(c: LinkConf): string {
  const dir = tempTree({}, 'm2gate-link-');
  const file = join(dir, 'mongrel2.conf');
  writeFileSync(file, linkConfText(c));
  return file;
}

export interface LinkRig {
  gateway: Gateway;
  pool: LinkPool;
  port: number;
  spec: string;
  sendIdent: string;
  log: LogCapture;
  client(): Promise<RawClient>;
  close(): Promise<void>;
}

/** A Gateway in-process serving '/svc/' over the link on a fresh tcp:// endpoint. */
export async function startLinkGateway(
  options: { link?: LinkOptions; handlerTimeoutMs?: number; retryAfterSeconds?: number; protocol?: HeaderEncoding; settings?: Record<string, string | number>; cwd?: string } = {},
): Promise<LinkRig> {
  const spec = await linkEndpoint();
  const config = parseConfig(linkConfText({ sendSpec: spec, protocol: options.protocol, settings: options.settings }));
  const log = logCapture();
  const gateway = new Gateway({
    config,
    server: findServer(config),
    cwd: options.cwd ?? ROOT,
    port: 0,
    host: '127.0.0.1',
    logger: log.logger,
    link: options.link,
    ...(options.handlerTimeoutMs !== undefined ? { handlerTimeoutMs: options.handlerTimeoutMs } : {}),
    ...(options.retryAfterSeconds !== undefined ? { retryAfterSeconds: options.retryAfterSeconds } : {}),
  });
  const pool = gateway.pools[0];
  if (!(pool instanceof LinkPool)) throw new Error('the link Handler did not get a LinkPool');
  const port = await gateway.start();
  const clients: RawClient[] = [];
  return {
    gateway,
    pool,
    port,
    spec,
    sendIdent: LINK_IDENT,
    log,
    async client() {
      const c = await RawClient.open(port);
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.destroy();
      await gateway.close();
    },
  };
}

// ---- a service driven by hand -------------------------------------------------------------

export interface Got {
  msg: LinkMessage;
  /** The Mongrel2 message a REQUEST or DISCONNECT carries, parsed. */
  req?: M2Request;
  at: number;
  /** Which BATCH (numbered from 1 as received) carried it; undefined when it came alone. */
  batch?: number;
}

/** A received link message, with a BATCH's messages unpacked in order (each tagged with its batch's number). */
function unpack(msg: LinkMessage, batches: { n: number }): Array<{ msg: LinkMessage; batch?: number }> {
  if (msg.command !== 'BATCH') return [{ msg }];
  const batch = ++batches.n;
  return msg.frames.map((f) => ({ msg: decodeBatchItem(f), batch }));
}

/** A DEALER speaking the link to a gateway; every message it receives is in `inbox`. */
export class FakeService {
  readonly dealer: Dealer;
  readonly inbox = new Recorder<Got>();
  readonly sendIdent: string;
  /** BATCH messages received: their messages are in the inbox, each with its `batch`. */
  readonly batches = { n: 0 };
  #chain: Promise<void> = Promise.resolve();
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(dealer: Dealer, sendIdent: string) {
    this.dealer = dealer;
    this.sendIdent = sendIdent;
  }

  /** Connects to `spec` and resolves once the ZMTP handshake is done. */
  static async connect(spec: string, sendIdent = LINK_IDENT): Promise<FakeService> {
    const dealer = new Dealer({ linger: 0 });
    const handshake = new Promise((resolve) => dealer.events.on('handshake', resolve));
    dealer.connect(spec);
    await deadline(handshake, 'fake service handshake');
    const fake = new FakeService(dealer, sendIdent);
    void fake.#read();
    return fake;
  }

  async #read(): Promise<void> {
    try {
      for await (const frames of this.dealer) {
        for (const { msg, batch } of unpack(decodeLink(frames), this.batches)) {
          const got: Got = { msg, at: Date.now(), ...(batch === undefined ? {} : { batch }) };
          if (msg.command === 'REQUEST' || msg.command === 'DISCONNECT') got.req = parseRequest(msg.message);
          this.inbox.push(got);
        }
      }
    } catch (err) {
      if (!this.#closed) throw err;
    }
  }

  /** Sends raw frames, in call order (zeromq allows one pending send per socket). */
  sendRaw(frames: Buffer[]): Promise<void> {
    this.#chain = this.#chain.then(() => this.dealer.send(frames));
    return this.#chain;
  }

  send(m: LinkMessage): Promise<void> {
    return this.sendRaw(encodeLink(m));
  }

  /** READY, then the gateway's HEARTBEAT that says it registered us. */
  async register(credit: number, threads = 1, name = 'fake'): Promise<void> {
    const from = this.inbox.items.length;
    await this.send({ command: 'READY', credit, threads, name });
    await this.inbox.waitFor((g) => g.msg.command === 'HEARTBEAT', `${name}: HEARTBEAT answering READY`, from);
  }

  /** The next REQUEST not taken before. */
  async request(what = 'REQUEST'): Promise<M2Request> {
    return (await this.inbox.take((g) => g.msg.command === 'REQUEST', what)).req!;
  }

  /** REQUESTs received so far. */
  get requests(): M2Request[] {
    return this.inbox.items.filter((g) => g.msg.command === 'REQUEST').map((g) => g.req!);
  }

  count(command: LinkMessage['command']): number {
    return this.inbox.count((g) => g.msg.command === command);
  }

  /** A REPLY with a Mongrel2 reply for `ids`; `credit` returned with it. */
  reply(ids: number | number[], body: string | Buffer, credit = 1, sender = this.sendIdent): Promise<void> {
    return this.send({ command: 'REPLY', credit, message: encodeReply(sender, ids, body) });
  }

  /** A REPLY with the close message (§4.3). */
  replyClose(ids: number | number[], credit = 0): Promise<void> {
    return this.send({ command: 'REPLY', credit, message: encodeClose(this.sendIdent, ids) });
  }

  /** Sends HEARTBEAT every `ms` from now on (a live service). */
  heartbeatEvery(ms: number): void {
    this.#heartbeat = setInterval(() => void this.send({ command: 'HEARTBEAT' }).catch(() => {}), ms);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.dealer.close();
  }
}

// ---- the gateway's end driven by hand -----------------------------------------------------

export interface FromPeer {
  /** The DEALER's routing id, hex. */
  peer: string;
  id: Buffer;
  frames: Buffer[];
  /** undefined when the frames broke the spec. */
  msg: LinkMessage | undefined;
  at: number;
  /** Which BATCH (numbered from 1 as received) carried it; undefined when it came alone. */
  batch?: number;
}

/** A ROUTER bound on a fresh tcp:// endpoint, for a real Service to connect to. */
export class FakeRouter {
  readonly router: Router;
  readonly inbox = new Recorder<FromPeer>();
  readonly spec: string;
  /** BATCH messages received: their messages are in the inbox, each with its `batch`. */
  readonly batches = { n: 0 };
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(router: Router, spec: string) {
    this.router = router;
    this.spec = spec;
  }

  static async bind(): Promise<FakeRouter> {
    const router = new Router({ linger: 0 });
    await router.bind('tcp://127.0.0.1:0');
    const fake = new FakeRouter(router, router.lastEndpoint!);
    void fake.#read();
    return fake;
  }

  async #read(): Promise<void> {
    try {
      for await (const [id, ...frames] of this.router) {
        let got: Array<{ msg: LinkMessage | undefined; batch?: number }>;
        try {
          got = unpack(decodeLink(frames), this.batches);
        } catch {
          got = [{ msg: undefined }];
        }
        for (const g of got) this.inbox.push({ peer: id!.toString('hex'), id: id!, frames, at: Date.now(), ...g });
      }
    } catch (err) {
      if (!this.#closed) throw err;
    }
  }

  sendRaw(id: Buffer, frames: Buffer[]): Promise<void> {
    this.#chain = this.#chain.then(() => this.router.send([id, ...frames]));
    return this.#chain;
  }

  send(id: Buffer, m: LinkMessage): Promise<void> {
    return this.sendRaw(id, encodeLink(m));
  }

  /** The next message (seen or future, from index `from`) with this command. */
  next(command: LinkMessage['command'], what: string, from = 0): Promise<FromPeer> {
    return this.inbox.waitFor((m) => m.msg?.command === command, what, from);
  }

  /** The REPLYs at index `from` or later, once there are at least `n`. */
  replies(n: number, from: number): Promise<FromPeer[]> {
    return this.inbox.when(() => {
      const got = this.inbox.items.slice(from).filter((m) => m.msg?.command === 'REPLY');
      return got.length >= n ? got : undefined;
    }, `${n} REPLYs`);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.router.close();
  }
}

/** The sender of the requests a FakeRouter sends (as a front's Handler would). */
export const FRONT_SENDER = '6c1f0e2a-0000-4000-8000-0000000front';

/** A plain GET as a front sends it over the link (JSON headers). */
export function linkGet(connId: number, path: string): Buffer {
  return encodeRequest({ sender: FRONT_SENDER, connId, path, headers: { PATH: path, METHOD: 'GET', VERSION: 'HTTP/1.1', URI: path, PATTERN: '/', host: 'localhost' }, body: '' }, 'json');
}

/**
 * A real Service (test/fixtures/routes/link-probes.mjs, one thread, credit 8) joined to a
 * FakeRouter, registered: its READY answered and its 'connected to the gateway' line seen.
 */
export async function serviceOnFakeRouter(t: { after(fn: () => unknown): void }, senderId: string): Promise<{ router: FakeRouter; svc: Service; log: LogCapture; peer: FromPeer }> {
  const router = await FakeRouter.bind();
  const log = logCapture();
  const svc = new Service({ connect: router.spec, routesModule: pathToFileURL(fixtureRoutes('link-probes.mjs')).href, workers: 1, credit: 8, heartbeatMs: 60_000, liveness: 3, senderId, drainTimeoutMs: 5000, logger: log.logger });
  await svc.start();
  t.after(async () => {
    await svc.close();
    router.close();
  });
  const peer = await router.next('READY', 'READY');
  await router.send(peer.id, { command: 'HEARTBEAT' });
  await log.waitFor((l) => l.msg === 'connected to the gateway', 'connected to the gateway');
  return { router, svc, log, peer };
}

// ---- the CLI as child processes -----------------------------------------------------------

export type { LogLine } from './ndjson.js';

export interface Cli {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every stdout line (NDJSON parsed, else `{ raw }`), with `seenAt` (the test's clock) added. */
  readonly log: Recorder<LogLine & { seenAt: number }>;
  stderr(): string;
  /** The first line at index `from` or later matching `pred`; rejects on exit or deadline. */
  waitFor(pred: (line: LogLine) => boolean, what: string, from?: number, ms?: number): Promise<LogLine & { seenAt: number }>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGTERM) unless it exited; resolves on exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Spawns `node dist/cli/m2gate.js ...args` (run `npm run build` first); with `netns`, inside that
 * network namespace (`ip netns exec`, which execs, so the child's pid is the command's); with
 * `command`, that program instead of the CLI (its non-JSON lines are `{ raw }`).
 */
export function spawnCli(args: string[], env: Record<string, string> = {}, options: { netns?: string; command?: string[] } = {}): Cli {
  const command = options.command ?? [process.execPath, M2GATE_BIN];
  const argv = [...(options.netns === undefined ? [] : ['netns', 'exec', options.netns]), ...command, ...args];
  const child = spawn(options.netns === undefined ? argv[0]! : 'ip', options.netns === undefined ? argv.slice(1) : argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const log = new Recorder<LogLine & { seenAt: number }>();
  let stderr = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readJsonLines(child.stdout, (line) => log.push({ ...line, seenAt: Date.now() }));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-20_000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      running.delete(child);
      exit = { code, signal };
      log.push({ msg: '(exited)', raw: JSON.stringify(exit), seenAt: Date.now() });
      resolve(exit);
    }),
  );
  const context = (): string => {
    const tail = log.items
      .filter((l) => l.msg !== 'request')
      .slice(-40)
      .map((l) => l.raw ?? JSON.stringify(l));
    return `\n--- m2gate ${args.join(' ')}: last non-request lines ---\n${tail.join('\n')}\n--- stderr ---\n${stderr}`;
  };
  // Scans only lines not scanned before: the load tests write thousands of request lines.
  const waitFor = (pred: (line: LogLine) => boolean, what: string, from = 0, ms = LINK_WAIT_MS): Promise<LogLine & { seenAt: number }> => {
    let next = from;
    return log
      .when(
        () => {
          for (; next < log.items.length; next++) {
            const line = log.items[next]!;
            if (pred(line)) return line;
          }
          if (exit) throw new Error(`exited ${JSON.stringify(exit)} before '${what}'${context()}`);
          return undefined;
        },
        what,
        ms,
      )
      .catch((err: unknown) => {
        throw new Error(`m2gate ${args[0]}: ${(err as Error).message}${(err as Error).message.includes('---') ? '' : context()}`);
      });
  };
  return {
    child,
    pid: child.pid!,
    log,
    stderr: () => stderr,
    waitFor,
    exited,
    stop(signal = 'SIGTERM') {
      if (!exit) child.kill(signal);
      return exited;
    },
  };
}

/** SIGKILLs every child spawnCli started that is still running. */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          child.once('close', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

export const isMsg = (msg: string) => (line: LogLine) => line.msg === msg;

// ---- load ---------------------------------------------------------------------------------

export interface Outcome {
  path: string;
  /** performance.now() at send and at the end of the body (or the error). */
  start: number;
  end: number;
  /** 0 when there was no response at all. */
  status: number;
  body: string;
  error?: string;
}

export interface LoadLoop {
  readonly outcomes: Recorder<Outcome>;
  /** Requests sent and not yet settled. */
  readonly inFlight: number;
  /** Requests sent so far. */
  readonly sent: number;
  /** Stops sending; resolves once every request sent has settled. */
  stop(): Promise<void>;
}

/** `connections` loops, each sending its next request when the last one settled. */
export function loadLoop(origin: string, options: { connections: number; paths: string[]; timeoutMs?: number }): LoadLoop {
  const pool = new Pool(origin, { connections: options.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const outcomes = new Recorder<Outcome>();
  let stopping = false;
  let sent = 0;
  let inFlight = 0;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const loops = Array.from({ length: options.connections }, async (_, c) => {
    let i = c;
    while (!stopping) {
      const path = options.paths[i++ % options.paths.length]!;
      sent++;
      inFlight++;
      const start = performance.now();
      let outcome: Outcome;
      try {
        const res = await pool.request({ path, method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
        const body = await res.body.text();
        outcome = { path, start, end: performance.now(), status: res.statusCode, body };
      } catch (err) {
        outcome = { path, start, end: performance.now(), status: 0, body: '', error: String(err) };
      }
      inFlight--;
      outcomes.push(outcome);
      // A refused connection (gateway restarting) fails at once: do not spin on it.
      if (outcome.status === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  return {
    outcomes,
    get inFlight() {
      return inFlight;
    },
    get sent() {
      return sent;
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
      await pool.close();
    },
  };
}

/** The p-th percentile (nearest rank) of `values`. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** What test/fixtures/routes/link-probes.mjs reports from its worker threads. */
export interface LinkProbe {
  event: 'started' | 'aborted';
  tag: string;
  connId: number;
}

/**
 * The fixture routes' probe channel: `probe(event, tag)` awaits a route's report, `release(tag)`
 * lets a held route answer. One per test process (the channel's name is the fixture's).
 */
export function linkProbes(): { probes: Recorder<LinkProbe>; release: (tag: string) => void; probe: (event: LinkProbe['event'], tag: string) => Promise<LinkProbe> } {
  const probes = new Recorder<LinkProbe>();
  const channel = new BroadcastChannel('m2gate-link-probes');
  channel.onmessage = (event: unknown) => {
    const data = (event as { data: LinkProbe | { release: string } }).data;
    if ('event' in data) probes.push(data);
  };
  channel.unref();
  return {
    probes,
    release: (tag) => channel.postMessage({ release: tag }),
    probe: (event, tag) => probes.waitFor((p) => p.event === event && p.tag === tag, `${tag} ${event}`),
  };
}
