// Load, overload and heap-growth drivers shared by test/gateway-load.test.ts (bounded, in CI) and
// scripts/soak.mjs (`npm run soak`, the long forms of issue #8):
// - startStack: `m2gate start` from dist/ on a temp mongrel2.conf (ipc:// handler endpoints, a
//   Dir at `/`, the demo service under /svc/, the demo app for /app/hello), with
//   scripts/heap-probe.mjs preloaded under --expose-gc so the test can read the gateway's heap
//   after a full GC (SIGUSR2 → one `heap probe` line) without any hook in the gateway;
// - closedLoop: C connections each sending its next request when the last is answered, for a
//   duration or a request count, checking every status and body;
// - openLoop: requests at a fixed rate whatever the answers (the way overload arrives).
// Latencies go to a fixed log-scale histogram, so a million requests cost no memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { M2GATE_BIN, ROOT } from './service.js';

export const HEAP_PROBE = join(ROOT, 'scripts', 'heap-probe.mjs');
export const DEMO_APP = join(ROOT, 'dist', 'gateway', 'demo-app.js');
const WAIT_MS = 20_000;

// ---- latency histogram ----------------------------------------------------------------------

/** Buckets of 2^(1/8) from 1 µs: under 10 % error, 256 counters. */
export class Histogram {
  readonly #counts = new Float64Array(256);
  count = 0;
  max = 0;

  add(ms: number): void {
    const us = Math.max(1, ms * 1000);
    const i = Math.min(255, Math.floor(Math.log2(us) * 8));
    this.#counts[i]!++;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  /** The p-th percentile in ms (upper edge of its bucket). */
  percentile(p: number): number {
    let seen = 0;
    const target = Math.ceil((p / 100) * this.count);
    for (let i = 0; i < 256; i++) {
      seen += this.#counts[i]!;
      if (seen >= target && seen > 0) return Math.min(this.max, 2 ** ((i + 1) / 8) / 1000);
    }
    return this.max;
  }

  summary(): string {
    return `p50 ${this.percentile(50).toFixed(2)} ms, p99 ${this.percentile(99).toFixed(2)} ms, max ${this.max.toFixed(1)} ms`;
  }
}

// ---- the stack under test -------------------------------------------------------------------

export interface StackOptions {
  services?: number;
  workers?: number;
  /** The services' --max-queue (M2GATE_MAX_QUEUE). */
  maxQueue?: number;
  handlerTimeoutMs?: number;
}

export interface Stack {
  port: number;
  origin: string;
  /** Exact bodies of the load mix's routes. */
  expected: Record<string, string>;
  /** The gateway's heap after a full GC (median of three probes). */
  heap(): Promise<number>;
  /** Log lines whose `msg` is not one of the per-request ones (warnings, errors). */
  notable(): Array<Record<string, unknown>>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  child: ChildProcess;
}

/** Per-request log lines, counted but not kept (a soak writes millions). */
const ROUTINE = new Set(['request']);

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'm2gate-load-'));
  mkdirSync(join(dir, 'www'));
  copyFileSync(join(ROOT, 'public', 'index.html'), join(dir, 'www', 'index.html'));
  const ipc = (name: string): string => `ipc://${join(dir, name)}`;
  const conf = `svc = Handler(send_spec='${ipc('send')}', send_ident='0ad0ad00-0000-4000-8000-00000000load', recv_spec='${ipc('recv')}', recv_ident='')
www = Dir(base='www/', index_file='index.html', default_ctype='text/plain')
main = Server(uuid="0ad0ad00-0000-4000-8000-0000000server", name="load", port=6767, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid", default_host="localhost",
  hosts=[Host(name="localhost", routes={ '/': www, '/svc/': svc })])
settings = { "server.daemonize": 0 }
servers = [main]
`;
  const file = join(dir, 'mongrel2.conf');
  writeFileSync(file, conf);
  const args = ['--expose-gc', '--import', HEAP_PROBE, M2GATE_BIN, 'start', '--config', file, '--port', '0', '--app', DEMO_APP];
  args.push('--services', String(options.services ?? 1), '--workers', String(options.workers ?? 1));
  if (options.handlerTimeoutMs !== undefined) args.push('--handler-timeout', String(options.handlerTimeoutMs));
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  if (options.maxQueue !== undefined) env.M2GATE_MAX_QUEUE = String(options.maxQueue);
  const child = spawn(process.execPath, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });

  const notable: Array<Record<string, unknown>> = [];
  const waiters = new Set<(line: Record<string, unknown>) => void>();
  let stderr = '';
  let partial = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-20_000)));
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const text of parts) {
      if (text === '') continue;
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { raw: text };
      }
      // Per-request lines carry a status; everything else is kept.
      if (typeof line.status === 'number' || ROUTINE.has(String(line.msg))) continue;
      notable.push(line);
      for (const w of [...waiters]) w(line);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((e) => (exit = e));

  function waitFor(pred: (line: Record<string, unknown>) => boolean, what: string, from = 0): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const done = (line: Record<string, unknown>): void => {
        clearTimeout(timer);
        waiters.delete(check);
        resolve(line);
      };
      const check = (line: Record<string, unknown>): void => {
        if (pred(line)) done(line);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`m2gate start: no '${what}' within ${WAIT_MS} ms (exit ${JSON.stringify(exit)})\n${notable.map((l) => JSON.stringify(l)).join('\n')}\n${stderr}`));
      }, WAIT_MS);
      const seen = notable.slice(from).find(pred);
      if (seen) {
        clearTimeout(timer);
        resolve(seen);
        return;
      }
      waiters.add(check);
      void exited.then(() => {
        if (waiters.has(check)) {
          clearTimeout(timer);
          waiters.delete(check);
          reject(new Error(`m2gate start exited ${JSON.stringify(exit)} before '${what}'\n${stderr}`));
        }
      });
    });
  }

  try {
    const serving = await waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('m2gate is serving'), 'm2gate is serving');
    const services = options.services ?? 1;
    // Every service connected to the front (their own lines), and the gateway's latest peer
    // count says so too: a peer can connect and leave before the real one (seen during start).
    const ready = (): boolean => {
      const fronts = notable.filter((l) => l.msg === 'connected to the front').length;
      const peers = notable.filter((l) => l.msg === 'handler connected' || l.msg === 'handler disconnected').at(-1);
      return fronts >= services && peers?.msg === 'handler connected' && Number(peers.peers ?? peers.services) >= services;
    };
    await waitFor(() => ready(), `${services} service(s) connected`);
    const port = serving.port as number;
    return {
      port,
      origin: `http://127.0.0.1:${port}`,
      child,
      expected: {
        '/app/hello': 'hello from the gateway\n',
        '/svc/hello': 'hello',
        '/': readFileSync(join(dir, 'www', 'index.html'), 'utf8'),
      },
      async heap() {
        const readings: number[] = [];
        for (let i = 0; i < 3; i++) {
          const from = notable.length;
          child.kill('SIGUSR2');
          const line = await waitFor((l) => l.msg === 'heap probe', 'heap probe', from);
          readings.push(line.heapUsed as number);
        }
        return readings.sort((a, b) => a - b)[1]!;
      },
      notable: () => notable.filter((l) => l.msg !== 'heap probe'),
      async stop() {
        if (!exit) child.kill('SIGTERM');
        const e = await exited;
        rmSync(dir, { recursive: true, force: true });
        return e;
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

// ---- load generators ------------------------------------------------------------------------

export interface LoadResult {
  requests: number;
  /** Status → count. */
  statuses: Record<number, number>;
  /** Responses whose status was 2xx but whose body was not the expected one. */
  wrongBodies: number;
  /** Connection errors, resets, timeouts (no status at all). */
  errors: number;
  firstError?: string;
  seconds: number;
  latency: Histogram;
  /** Per status class, e.g. latency of the 503s alone. */
  latencyByStatus: Map<number, Histogram>;
  /** 503s without a Retry-After header. */
  missingRetryAfter: number;
}

function newResult(): LoadResult {
  return { requests: 0, statuses: {}, wrongBodies: 0, errors: 0, seconds: 0, latency: new Histogram(), latencyByStatus: new Map(), missingRetryAfter: 0 };
}

async function one(pool: Pool, path: string, expected: string | undefined, r: LoadResult): Promise<void> {
  const t0 = performance.now();
  try {
    const res = await pool.request({ path, method: 'GET', headersTimeout: 30_000, bodyTimeout: 30_000 });
    const body = await res.body.text();
    const ms = performance.now() - t0;
    r.statuses[res.statusCode] = (r.statuses[res.statusCode] ?? 0) + 1;
    r.latency.add(ms);
    let h = r.latencyByStatus.get(res.statusCode);
    if (!h) r.latencyByStatus.set(res.statusCode, (h = new Histogram()));
    h.add(ms);
    if (res.statusCode === 503 && res.headers['retry-after'] === undefined) r.missingRetryAfter++;
    if (res.statusCode >= 200 && res.statusCode < 300 && expected !== undefined && body !== expected) r.wrongBodies++;
  } catch (err) {
    r.errors++;
    r.firstError ??= String(err);
  }
  r.requests++;
}

export interface ClosedLoopOptions {
  connections: number;
  /** Paths taken in turn by each connection. */
  paths: string[];
  /** Stop after this long… */
  durationMs?: number;
  /** …or after this many requests in all. */
  requests?: number;
  expected?: Record<string, string>;
}

/** C connections, each with one request outstanding at a time. */
export async function closedLoop(origin: string, o: ClosedLoopOptions): Promise<LoadResult> {
  const pool = new Pool(origin, { connections: o.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const r = newResult();
  const t0 = performance.now();
  const end = o.durationMs === undefined ? Infinity : t0 + o.durationMs;
  let issued = 0;
  const limit = o.requests ?? Infinity;
  const loops = Array.from({ length: o.connections }, async (_, c) => {
    let i = c;
    while (performance.now() < end && issued < limit) {
      issued++;
      const path = o.paths[i++ % o.paths.length]!;
      await one(pool, path, o.expected?.[path], r);
    }
  });
  await Promise.all(loops);
  r.seconds = (performance.now() - t0) / 1000;
  await pool.close();
  return r;
}

export interface OpenLoopOptions {
  /** Requests per second offered, whatever the answers. */
  rate: number;
  durationMs: number;
  path: string;
  /** Most requests outstanding (connections); past it a request counts as an error. */
  maxOutstanding: number;
}

/** Requests at a fixed rate (10 ms ticks), the shape of real overload. */
export async function openLoop(origin: string, o: OpenLoopOptions): Promise<LoadResult & { peakOutstanding: number }> {
  const pool = new Pool(origin, { connections: o.maxOutstanding, pipelining: 1, keepAliveTimeout: 60_000 });
  const r = newResult();
  let outstanding = 0;
  let peak = 0;
  const inFlight = new Set<Promise<void>>();
  const t0 = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = performance.now() - t0;
      const due = Math.floor((Math.min(elapsed, o.durationMs) / 1000) * o.rate);
      for (; sent < due; sent++) {
        if (outstanding >= o.maxOutstanding) {
          // The client would queue it: that hides overload from the server. Count it instead.
          r.errors++;
          r.firstError ??= `more than ${o.maxOutstanding} requests outstanding`;
          r.requests++;
          continue;
        }
        outstanding++;
        peak = Math.max(peak, outstanding);
        const p = one(pool, o.path, undefined, r).finally(() => {
          outstanding--;
          inFlight.delete(p);
        });
        inFlight.add(p);
      }
      if (elapsed >= o.durationMs) {
        clearInterval(tick);
        resolve();
      }
    }, 10);
  });
  await Promise.all(inFlight);
  r.seconds = (performance.now() - t0) / 1000;
  await pool.close();
  return { ...r, peakOutstanding: peak };
}

export function describe(r: LoadResult): string {
  const statuses = Object.entries(r.statuses)
    .map(([s, n]) => `${s}×${n}`)
    .join(' ');
  return `${r.requests} requests in ${r.seconds.toFixed(1)} s (${Math.round(r.requests / r.seconds)}/s), ${statuses}, ${r.errors} errors, ${r.wrongBodies} wrong bodies, ${r.latency.summary()}`;
}
