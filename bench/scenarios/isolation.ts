/**
 * Scenario `isolation` (issue #7, 3): the p99 of a trivial route measured by a
 * light, paced probe (wrk, 2 connections, one request per 10 ms each) alone,
 * then while a second wrk saturates the CPU route `/svc/fib/:n`.
 *
 *   m2gate: gateway with the demo app + m2gate service --workers 1; the probe
 *     asks /app/hello (answered in the gateway), the load goes to the service
 *   inline: one node:http process that runs the same fib on its event loop
 *     (bench/cpu-server.ts --mode inline); the probe asks its /app/hello
 *
 * One fib thread on each side, so both do the same CPU work per request; the
 * m2gate side also has its gateway and service main threads. Unpinned (the
 * gateway needs the core the worker thread leaves). Goal: m2gate's loaded p99
 * at most 3x its idle p99.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { BenchConfig } from '../lib/config.js';
import type { BenchConf } from '../lib/front.js';
import { demoApp, startCpuServer, startGateway, startService } from '../lib/launch.js';
import type { Role } from '../lib/measure.js';
import type { Spawned } from '../lib/proc.js';
import { allRan, figure, ratioGoal, runRounds, type Outcome, type Variant } from '../lib/rounds.js';
import { goalText, num, spreadText, table, type Goal, type ScenarioResult } from '../lib/report.js';
import { missing, withProcesses } from '../lib/variant.js';
import { pacedScript, runWrk, socketErrorCount, type WrkResult } from '../lib/wrk.js';
import { fibN } from '../lib/fib-n.js';
import { CPU_CONNECTIONS } from './scaling.js';

/** Probe: connections and the pause before each request on each. */
const PROBE_CONNECTIONS = 2;
const PROBE_PAUSE_MS = 10;

export interface IsolationSample {
  idle: { p50Ms: number; p99Ms: number; rps: number };
  loaded: { p50Ms: number; p99Ms: number; rps: number };
  /** The saturating load on the CPU route during the loaded probe. */
  cpuRoute: { rps: number; p99Ms: number };
  errors: number;
}

type Start = (conf: BenchConf, started: Spawned[]) => Promise<Role[]>;

function probeSummary(w: WrkResult): { p50Ms: number; p99Ms: number; rps: number } {
  return { p50Ms: w.p50Ms, p99Ms: w.p99Ms, rps: w.rps };
}

function isolationRun(cfg: BenchConfig, start: Start, probePath: string, loadPath: string): Promise<IsolationSample> {
  return withProcesses(
    cfg,
    start,
    // Ready once the CPU route answers: the service (or the server) is up behind the front.
    loadPath,
    async (base, _roles, conf) => {
      const script = join(conf.dir, 'paced.lua');
      writeFileSync(script, pacedScript(PROBE_PAUSE_MS));
      const probe = (durationS: number): Promise<WrkResult> => runWrk({ url: `${base}${probePath}`, durationS, connections: PROBE_CONNECTIONS, script });
      if (cfg.warmupS > 0) {
        await probe(cfg.warmupS);
        await runWrk({ url: `${base}${loadPath}`, durationS: cfg.warmupS, connections: CPU_CONNECTIONS });
      }
      const idle = await probe(cfg.durationS);
      // The load runs 1 s before and after the probe's window, so the probe sees only saturated time.
      const load = runWrk({ url: `${base}${loadPath}`, durationS: cfg.durationS + 2, connections: CPU_CONNECTIONS });
      await delay(1000);
      const loaded = await probe(cfg.durationS);
      const heavy = await load;
      return {
        idle: probeSummary(idle),
        loaded: probeSummary(loaded),
        cpuRoute: { rps: heavy.rps, p99Ms: heavy.p99Ms },
        errors: idle.non2xx + socketErrorCount(idle) + loaded.non2xx + socketErrorCount(loaded) + heavy.non2xx + socketErrorCount(heavy),
      };
    },
    (s) => s.errors > 0,
  );
}

export async function isolationScenario(cfg: BenchConfig): Promise<ScenarioResult> {
  const needs = missing(cfg, ['wrk', 'm2gate']);
  if (needs.length > 0) return { name: 'isolation', status: 'skipped', missing: needs, text: `SKIPPED: missing ${needs.join('; ')}`, goals: [], data: {} };
  const fib = fibN(cfg);
  const loadPath = `/svc/fib/${fib.n}`;
  const m2gate =
    (workers: number): Start =>
    (conf, started) => {
      const gateway = startGateway(cfg, conf, undefined, demoApp(cfg), { cpus: null });
      started.push(gateway);
      const service = startService(cfg, conf, workers, undefined, [], { cpus: null });
      started.push(service);
      return Promise.resolve([
        { role: 'gateway', proc: gateway },
        { role: 'service', proc: service },
      ]);
    };
  const inline: Start = (conf, started) => {
    const proc = startCpuServer(cfg, conf, 'inline', 1, { cpus: null });
    started.push(proc);
    return Promise.resolve([{ role: 'server', proc }]);
  };
  const variants: Array<Variant<IsolationSample>> = [
    { key: 'm2gate', label: 'm2gate: /app/hello, fib on service --workers 1', run: () => isolationRun(cfg, m2gate(1), '/app/hello', loadPath) },
    { key: 'inline', label: 'node:http, fib inline: /app/hello', run: () => isolationRun(cfg, inline, '/app/hello', loadPath) },
    // Context only (no goal): left out of --quick.
    ...(cfg.quick ? [] : [{ key: 'm2gate-w2', label: 'm2gate: /app/hello, fib on service --workers 2 (both cores busy)', run: () => isolationRun(cfg, m2gate(2), '/app/hello', loadPath) }]),
  ];
  const describe = (s: IsolationSample): string =>
    `probe p99 idle ${s.idle.p99Ms.toFixed(2)} ms, loaded ${s.loaded.p99Ms.toFixed(2)} ms (${(s.loaded.p99Ms / s.idle.p99Ms).toFixed(1)}x); CPU route ${Math.round(s.cpuRoute.rps)} req/s${s.errors > 0 ? `, ERRORS ${s.errors}` : ''}`;
  const outcomes = await runRounds(cfg, 'isolation', variants, describe);
  const none: Outcome<IsolationSample> = { key: '', label: '', samples: [], failures: [] };
  const by = (key: string): Outcome<IsolationSample> => outcomes.find((o) => o.key === key) ?? none;
  const loadedP99 = (s: IsolationSample): number => s.loaded.p99Ms;
  const idleP99 = (s: IsolationSample): number => s.idle.p99Ms;
  const goals: Goal[] = [ratioGoal({ id: 'isolation-m2gate', label: 'isolation: m2gate loaded p99 / idle p99 (/app/hello)', op: '<=', target: 3 }, by('m2gate'), loadedP99, by('m2gate'), idleP99)];
  const info = [
    ratioGoal({ id: 'isolation-inline', label: '(info) node:http inline: loaded p99 / idle p99', op: '<=', target: 3 }, by('inline'), loadedP99, by('inline'), idleP99),
    ratioGoal({ id: 'isolation-m2gate-w2', label: '(info) m2gate --workers 2: loaded p99 / idle p99', op: '<=', target: 3 }, by('m2gate-w2'), loadedP99, by('m2gate-w2'), idleP99),
  ];
  const f = (o: Outcome<IsolationSample>, pick: (s: IsolationSample) => number, digits = 2): string => spreadText(figure(o, pick), digits);
  const rows = outcomes.map((o) => {
    if (!o.samples.some((s) => s !== undefined)) return [o.label, 'FAILED', '', '', '', '', '', ''];
    const growth = ratioGoal({ id: '', label: '', op: '<=', target: 3 }, o, loadedP99, o, idleP99);
    return [o.label, f(o, (s) => s.idle.p50Ms), f(o, idleP99), f(o, (s) => s.loaded.p50Ms), f(o, loadedP99), `${num(growth.value, 1)}×`, f(o, (s) => s.cpuRoute.rps, 0), num(o.samples.reduce((n, s) => n + (s?.errors ?? 0), 0))];
  });
  const text = [
    `Probe: GET /app/hello, wrk ${PROBE_CONNECTIONS} connections pausing ${PROBE_PAUSE_MS} ms before each request (about ${Math.round((PROBE_CONNECTIONS * 1000) / PROBE_PAUSE_MS)} req/s at most).`,
    `Load: GET ${loadPath} (fib(${fib.n}), about 2 ms of CPU), wrk ${CPU_CONNECTIONS} connections, started 1 s before the loaded probe. Unpinned.`,
    '',
    table(['variant', 'idle p50 ms', 'idle p99 ms', 'loaded p50 ms', 'loaded p99 ms', 'p99 loaded / idle', 'CPU route req/s', 'errors'], rows),
    ...outcomes.flatMap((o) => o.failures.map((x) => `- ${o.label}: FAILED ${x}`)),
    '',
    ...[...goals, ...info].map((g) => `- ${goalText(g)}`),
  ].join('\n');
  return { name: 'isolation', status: allRan(outcomes) ? 'ok' : 'partial', missing: [], text, goals, data: { fib, outcomes } };
}
