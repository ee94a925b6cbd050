/**
 * Scenario `call`: Brubeck's synchronous service call from an app route,
 * `await ctx.call('/svc/hello')`, against the transport floor, a raw zeromq.js
 * DEALER/ROUTER echo between two processes.
 *
 * What is compared (the goal: ctx.call <= 2x the floor's latency):
 *   ctx.call round trip = the time from just before `ctx.call()` to the moment
 *     its promise resumes the app route, timed inside the gateway
 *     (bench/call-app.ts), with one request in flight (wrk, 1 connection);
 *     it covers request encoding, PUSH, the service's parse, routing and
 *     piscina hop, reply encoding, PUB, SUB, reply parsing.
 *   floor round trip = the time from just before DEALER send() to the moment
 *     the ROUTER's echo is read, timed in the client process, one message in
 *     flight, payload the size of the ctx.call request message.
 * Both sides of each pair run on the same CPUs (the server CPUs) over tcp://
 * loopback. Also reported: HTTP latency of /app/call and /app/trivial at one
 * connection (their difference is what a client sees of the call), and
 * throughput at `connections` in flight (echo: a window of as many messages).
 */
import { join } from 'node:path';
import { readFileSync, statSync } from 'node:fs';
import { createHistogram } from 'node:perf_hooks';
import { once } from 'node:events';
import type { BenchConfig } from '../lib/config.js';
import { BENCH_DIR, ROOT } from '../lib/config.js';
import { freePort, HANDLER_IDENT, type BenchConf } from '../lib/front.js';
import { startGateway, startService } from '../lib/launch.js';
import { measureHttp, type Role } from '../lib/measure.js';
import { spawnPinned, type Spawned } from '../lib/proc.js';
import { httpGet } from '../lib/ready.js';
import { runWrk } from '../lib/wrk.js';
import { allRan, figure, ratioGoal, runRounds, type Outcome, type Variant } from '../lib/rounds.js';
import { goalText, num, spreadText, table, type Goal, type ScenarioResult } from '../lib/report.js';
import { missing, withProcesses } from '../lib/variant.js';
import { formatProfile, profileSummaries } from '../lib/cpuprofile.js';
import { ratio } from '../lib/stats.js';
import { encodeRequest } from '../../protocol/m2-request.js';
import type { EchoResult } from '../echo-dealer-router.js';

const APP = join(BENCH_DIR, 'call-app.ts');

interface Percentiles {
  p50Us: number;
  p99Us: number;
}

export interface CallSample {
  /** HTTP round trip at 1 connection (app routes only), from wrk. */
  http1?: Percentiles;
  /**
   * The service's own time for /svc/hello at 1 in flight (the call route only), from its
   * per-request log line (`ms`: request parsed → reply queued, piscina hop included).
   */
  service1?: Percentiles;
  /** The compared round trip at 1 in flight: ctx.call timed in the gateway, or the echo. */
  rtt1?: Percentiles & { count: number };
  /** At `connections` in flight: req/s (HTTP) or messages/s (echo). */
  perS: number;
  /** Latency at `connections` in flight, µs: HTTP for app routes, the echo for the floor. */
  loaded: Percentiles;
  /** ctx.call timed in the gateway at `connections` in flight (the call route only). */
  rttLoaded?: Percentiles;
  /** CPU seconds per 1,000 requests (or messages) at `connections` in flight, per process. */
  cpuPer1k: Record<string, number>;
  errors: number;
}

interface CallStats {
  count: number;
  p50Us: number;
  p99Us: number;
}

/** The bytes ctx.call sends for GET /svc/hello (gateway/handler/service-call.ts builds the same header map, §3.2). */
function callMessageSize(): number {
  const headers = { REMOTE_ADDR: '127.0.0.1', METHOD: 'GET', URL_SCHEME: 'http', PATTERN: '/svc/', URI: '/svc/hello', VERSION: 'HTTP/1.1', PATH: '/svc/hello' };
  return encodeRequest({ sender: HANDLER_IDENT, connId: 1_000_000, path: '/svc/hello', headers, body: '' }, 'json').length;
}

async function callStats(base: string, reset: boolean): Promise<CallStats> {
  const answer = await httpGet(`${base}/app/call-stats${reset ? '?reset=1' : ''}`);
  if (answer.status !== 200) throw new Error(`/app/call-stats answered ${answer.status}`);
  return JSON.parse(answer.body.toString('utf8')) as CallStats;
}

const logSize = (file: string): number => statSync(file).size;

/** p50/p99 in µs of the `ms` of the service's 'request' log lines written after byte `from`. */
function serviceTimes(file: string, from: number): Percentiles & { count: number } {
  const hist = createHistogram();
  const text = readFileSync(file).subarray(from).toString('utf8');
  for (const line of text.split('\n')) {
    if (!line.includes('"msg":"request"')) continue;
    try {
      const ms = (JSON.parse(line) as { ms?: unknown }).ms;
      if (typeof ms === 'number') hist.record(Math.max(1, Math.round(ms * 1e6)));
    } catch {
      // a line cut at the window's edge
    }
  }
  return { count: hist.count, p50Us: hist.percentile(50) / 1000, p99Us: hist.percentile(99) / 1000 };
}

function appVariant(cfg: BenchConfig, route: 'trivial' | 'call'): (round: number) => Promise<CallSample> {
  const path = `/app/${route}`;
  return (round) =>
    withProcesses(
      cfg,
      (conf: BenchConf, started: Spawned[]): Promise<Role[]> => {
        const gateway = startGateway(cfg, conf, `call-${route}-r${round + 1}`, APP);
        started.push(gateway);
        const service = startService(cfg, conf, 1);
        started.push(service);
        return Promise.resolve([
          { role: 'gateway', proc: gateway },
          { role: 'service', proc: service },
        ]);
      },
      // Ready only once the service answers through the gateway.
      '/app/call',
      async (base, roles, conf) => {
        const url = `${base}${path}`;
        const serviceLog = join(conf.dir, 'logs', 'service.log');
        const one = { warmupS: 0, durationS: cfg.durationS, connections: 1, cpus: cfg.loadCpus, serverCpus: cfg.serverCpus };
        await runWrk({ url, durationS: cfg.warmupS, connections: cfg.connections, cpus: cfg.loadCpus });
        await callStats(base, true);
        const logFrom = logSize(serviceLog);
        const lat = await measureHttp(url, roles, one);
        const inner1 = await callStats(base, true);
        const service1 = serviceTimes(serviceLog, logFrom);
        const load = await measureHttp(url, roles, { ...one, connections: cfg.connections });
        const innerN = await callStats(base, true);
        const sample: CallSample = {
          http1: { p50Us: lat.p50Ms * 1000, p99Us: lat.p99Ms * 1000 },
          perS: load.rps,
          loaded: { p50Us: load.p50Ms * 1000, p99Us: load.p99Ms * 1000 },
          cpuPer1k: load.cpuPer1k,
          errors: lat.errors + load.errors,
        };
        if (route === 'call') {
          sample.rtt1 = inner1;
          sample.service1 = service1;
          sample.rttLoaded = { p50Us: innerN.p50Us, p99Us: innerN.p99Us };
        }
        return sample;
      },
      (sample) => sample.errors > 0,
    );
}

/** Runs the echo client once and returns its JSON result. @throws Error when it fails or overruns. */
async function echoClient(cfg: BenchConfig, dir: string, connect: string, window: number, size: number, serverPid: number): Promise<EchoResult> {
  const logFile = join(dir, `echo-client-${window}.log`);
  const client = spawnPinned(`echo client (window ${window})`, process.execPath, [
    '--import', 'tsx', join(BENCH_DIR, 'echo-dealer-router.ts'), 'client', '--connect', connect,
    '--seconds', String(cfg.durationS), '--warmup', String(cfg.warmupS), '--window', String(window), '--size', String(size),
    '--server-pid', String(serverPid),
  ], { cpus: cfg.serverCpus, cwd: ROOT, logFile });
  const timer = setTimeout(() => void client.stop(1000), (cfg.durationS + cfg.warmupS + 30) * 1000);
  const [code] = (await once(client.child, 'exit')) as [number | null];
  clearTimeout(timer);
  const text = readFileSync(logFile, 'utf8');
  if (code !== 0) throw new Error(`echo client exited with ${String(code)}:\n${text}`);
  return JSON.parse(text.trim().split('\n').pop() ?? '') as EchoResult;
}

function floorVariant(cfg: BenchConfig, size: number): () => Promise<CallSample> {
  return async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'm2gate-bench-echo-'));
    const connect = `tcp://127.0.0.1:${await freePort()}`;
    const server = spawnPinned('echo server', process.execPath, ['--import', 'tsx', join(BENCH_DIR, 'echo-dealer-router.ts'), 'server', '--bind', connect], {
      cpus: cfg.serverCpus,
      cwd: ROOT,
      logFile: join(dir, 'echo-server.log'),
    });
    let ok = false;
    try {
      const one = await echoClient(cfg, dir, connect, 1, size, server.pid);
      const many = await echoClient(cfg, dir, connect, cfg.connections, size, server.pid);
      if (server.exited()) throw new Error(`echo server exited:\n${server.logTail()}`);
      ok = true;
      return {
        rtt1: { p50Us: one.p50Us, p99Us: one.p99Us, count: one.messages },
        perS: many.msgsPerS,
        loaded: { p50Us: many.p50Us, p99Us: many.p99Us },
        cpuPer1k: { 'echo client': (many.cpuSeconds / many.messages) * 1000, 'echo server': ((many.serverCpuSeconds ?? Number.NaN) / many.messages) * 1000 },
        errors: 0,
      };
    } finally {
      await server.stop();
      if (ok && !cfg.keepLogs) rmSync(dir, { recursive: true, force: true });
      else cfg.log(`  (logs kept in ${dir})`);
    }
  };
}

function describeCall(s: CallSample): string {
  const parts: string[] = [];
  if (s.http1) parts.push(`HTTP@1 p50 ${s.http1.p50Us.toFixed(0)} µs`);
  if (s.rtt1) parts.push(`round trip@1 p50 ${s.rtt1.p50Us.toFixed(0)} µs p99 ${s.rtt1.p99Us.toFixed(0)} µs`);
  parts.push(`${Math.round(s.perS).toLocaleString('en-US')}/s loaded`);
  if (s.errors > 0) parts.push(`ERRORS ${s.errors}`);
  return parts.join(', ');
}

function tables(cfg: BenchConfig, outcomes: Array<Outcome<CallSample>>, size: number): string {
  const f = (o: Outcome<CallSample>, pick: (s: CallSample) => number | undefined, digits = 0): string => {
    const sp = figure(o, (s) => pick(s) ?? Number.NaN);
    return sp.n === 0 ? '' : spreadText(sp, digits);
  };
  const one = table(
    ['one in flight', 'HTTP p50 µs', 'HTTP p99 µs', 'round trip p50 µs', 'round trip p99 µs', 'in service p50 µs', 'in service p99 µs'],
    outcomes.map((o) => [
      o.label,
      f(o, (s) => s.http1?.p50Us),
      f(o, (s) => s.http1?.p99Us),
      f(o, (s) => s.rtt1?.p50Us),
      f(o, (s) => s.rtt1?.p99Us),
      f(o, (s) => s.service1?.p50Us),
      f(o, (s) => s.service1?.p99Us),
    ]),
  );
  const roles = [...new Set(outcomes.flatMap((o) => o.samples.flatMap((s) => Object.keys(s?.cpuPer1k ?? {}))))];
  const loaded = table(
    [`${cfg.connections} in flight`, 'per s median (min–max)', 'p50 µs', 'p99 µs', 'ctx.call p50 µs', ...roles.map((r) => `${r} CPU s/1k`), 'errors'],
    outcomes.map((o) => [
      o.label,
      f(o, (s) => s.perS),
      f(o, (s) => s.loaded.p50Us),
      f(o, (s) => s.loaded.p99Us),
      f(o, (s) => s.rttLoaded?.p50Us),
      ...roles.map((r) => {
        const sp = figure(o, (s) => s.cpuPer1k[r] ?? Number.NaN);
        return sp.n === 0 ? '' : num(sp.median, 3);
      }),
      num(o.samples.reduce((n, s) => n + (s?.errors ?? 0), 0)),
    ]),
  );
  const notes = outcomes.flatMap((o) => [...(o.skipped ? [`  ${o.label}: SKIPPED, missing ${o.skipped}`] : []), ...o.failures.map((x) => `  ${o.label}: FAILED ${x}`)]);
  return [
    `Payload of the floor: ${size} bytes (the ctx.call request message for /svc/hello), echoed unchanged.`,
    "'in service': the service's own log of each /svc/hello (request parsed → reply queued, piscina hop included).",
    '',
    one,
    '',
    loaded,
    ...(notes.length > 0 ? ['', ...notes] : []),
  ].join('\n');
}

export async function callScenario(cfg: BenchConfig): Promise<ScenarioResult> {
  const needs = missing(cfg, ['wrk', 'm2gate']);
  if (needs.length > 0) {
    return { name: 'call', status: 'skipped', missing: needs, text: `SKIPPED: missing ${needs.join('; ')}`, goals: [], data: {} };
  }
  const size = callMessageSize();
  const variants: Array<Variant<CallSample>> = [
    { key: 'trivial', label: 'app route, trivial (/app/trivial)', run: appVariant(cfg, 'trivial') },
    { key: 'call', label: 'app route, await ctx.call (/app/call)', run: appVariant(cfg, 'call') },
    { key: 'floor', label: 'floor: zeromq DEALER/ROUTER echo', run: floorVariant(cfg, size) },
  ];
  const outcomes = await runRounds(cfg, 'call', variants, describeCall);
  const [trivial, call, floor] = outcomes as [Outcome<CallSample>, Outcome<CallSample>, Outcome<CallSample>];
  const p50 = (s: CallSample): number => s.rtt1?.p50Us ?? Number.NaN;
  const p99 = (s: CallSample): number => s.rtt1?.p99Us ?? Number.NaN;
  const goals: Goal[] = [
    ratioGoal({ id: 'call-p50', label: 'call: ctx.call / DEALER-ROUTER floor, round trip p50 (1 in flight)', op: '<=', target: 2 }, call, p50, floor, p50),
    ratioGoal({ id: 'call-p99', label: 'call: ctx.call / DEALER-ROUTER floor, round trip p99 (1 in flight)', op: '<=', target: 2 }, call, p99, floor, p99),
  ];
  const added = figure(call, (s) => s.http1?.p50Us ?? Number.NaN).median - figure(trivial, (s) => s.http1?.p50Us ?? Number.NaN).median;
  const floorP50 = figure(floor, p50).median;
  const perS = (o: Outcome<CallSample>): number => figure(o, (s) => s.perS).median;
  const profiles = cfg.profile ? profileSummaries(cfg.resultsDir, 'call-') : [];
  const text = [
    tables(cfg, outcomes, size),
    '',
    ...goals.map(goalText),
    `HTTP p50 of /app/call minus /app/trivial (what a client sees of the call): ${num(added)} µs = ${num(ratio(added, floorP50), 2)}x the floor p50`,
    `Throughput at ${cfg.connections} in flight: /app/call = ${num(ratio(perS(call), perS(trivial)), 2)}x /app/trivial; = ${num(ratio(perS(call), perS(floor)), 2)}x the floor's messages/s`,
    ...(cfg.profile ? ['', '(--profile: figures include profiler overhead)', ...profiles.map((p) => formatProfile(p.summary, p.label))] : []),
  ].join('\n');
  return { name: 'call', status: allRan(outcomes) ? 'ok' : 'partial', missing: [], text, goals, data: { payloadBytes: size, outcomes, httpAddedP50Us: added, profiles } };
}
