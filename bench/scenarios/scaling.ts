/**
 * Scenario `scaling` (issue #7, 2): worker scaling on the CPU route
 * `GET /svc/fib/:n`, n calibrated to about 2 ms of CPU (lib/fib-n.ts).
 *
 *   m2gate gateway → m2gate service --workers 1 / --workers 2 / two services × --workers 1
 *   (PUSH/SUB, and the same over the m2gate link when it is built)
 *   node:http + piscina with 2 threads in one process (bench/cpu-server.ts): the ceiling
 *
 * Unpinned: worker threads need both cores, and wrk's share is small at about
 * a thousand requests per second. 16 connections keep every thread busy.
 * Goals: 2 threads >= 1.8x one thread; 2 threads >= 0.95x piscina in-process.
 */
import type { BenchConfig } from '../lib/config.js';
import type { BenchConf } from '../lib/front.js';
import { startCpuServer, startGateway, startService } from '../lib/launch.js';
import type { HttpSample, Role } from '../lib/measure.js';
import type { Spawned } from '../lib/proc.js';
import { allRan, figure, ratioGoal, runRounds, type Outcome, type Variant } from '../lib/rounds.js';
import { goalText, num, type Goal, type ScenarioResult } from '../lib/report.js';
import { ratioTable } from '../lib/ratio-table.js';
import { describeHttp, httpVariant, missing } from '../lib/variant.js';
import { linkMissing } from '../lib/link.js';
import { fibN } from '../lib/fib-n.js';

/** Connections for the CPU route: enough to keep two threads busy, few enough to keep queues short. */
export const CPU_CONNECTIONS = 16;

type Start = (conf: BenchConf, started: Spawned[]) => Promise<Role[]>;

export async function scalingScenario(cfg: BenchConfig): Promise<ScenarioResult> {
  const needs = missing(cfg, ['wrk', 'm2gate']);
  if (needs.length > 0) return { name: 'scaling', status: 'skipped', missing: needs, text: `SKIPPED: missing ${needs.join('; ')}`, goals: [], data: {} };
  const needLink = linkMissing(cfg);
  const fib = fibN(cfg);
  const path = `/svc/fib/${fib.n}`;
  const unpinned = { connections: CPU_CONNECTIONS, loadCpus: null, serverCpus: null } as const;

  /** The gateway and `services.length` services, services[i] worker threads each. */
  const gatewayTo = (services: number[], link: boolean): Start => (conf, started) => {
    const front = startGateway(cfg, conf, undefined, undefined, { cpus: null });
    started.push(front);
    const roles: Role[] = [{ role: 'front', proc: front }];
    services.forEach((workers, i) => {
      const proc = startService(cfg, conf, workers, undefined, [], { link, cpus: null, logName: `service-${i + 1}.log` });
      started.push(proc);
      roles.push({ role: services.length === 1 ? 'service' : `service ${i + 1}`, proc, threads: true });
    });
    return Promise.resolve(roles);
  };
  const piscina: Start = (conf, started) => {
    const proc = startCpuServer(cfg, conf, 'piscina', 2, { cpus: null });
    started.push(proc);
    return Promise.resolve([{ role: 'front', proc, threads: true }]);
  };
  const variant = (key: string, label: string, services: number[], link: boolean): Variant<HttpSample> => ({
    key,
    label,
    ...(link ? { missing: needLink } : {}),
    run: () => httpVariant(cfg, gatewayTo(services, link), path, { ...unpinned, ...(link ? { conf: { link: true } } : {}) }),
  });
  const variants: Array<Variant<HttpSample>> = [
    variant('w1', 'gateway → service --workers 1', [1], false),
    variant('w2', 'gateway → service --workers 2', [2], false),
    variant('2x1', 'gateway → 2 services × --workers 1', [1, 1], false),
    variant('link-w2', 'gateway → service --workers 2, link', [2], true),
    variant('link-2x1', 'gateway → 2 services × --workers 1, link', [1, 1], true),
    { key: 'piscina', label: 'node:http + piscina, 2 threads in-process (ceiling)', run: () => httpVariant(cfg, piscina, path, unpinned) },
  ];
  const outcomes = await runRounds(cfg, 'scaling', variants, describeHttp);
  const by = (key: string): Outcome<HttpSample> => outcomes.find((o) => o.key === key)!;
  const rps = (s: HttpSample): number => s.rps;
  const goals: Goal[] = [
    ratioGoal({ id: 'scaling-w2-w1', label: 'scaling: 2 threads / 1 thread, /svc/fib req/s', op: '>=', target: 1.8 }, by('w2'), rps, by('w1'), rps),
    ratioGoal({ id: 'scaling-w2-piscina', label: 'scaling: 2 threads / piscina in-process, /svc/fib req/s', op: '>=', target: 0.95 }, by('w2'), rps, by('piscina'), rps),
  ];
  const info = [
    ratioGoal({ id: 'scaling-2x1-w1', label: '(info) 2 services × 1 thread / 1 thread', op: '>=', target: 1.8 }, by('2x1'), rps, by('w1'), rps),
    ratioGoal({ id: 'scaling-link-w2', label: '(info) link, 2 threads / PUSH/SUB 2 threads', op: '>=', target: 0.95 }, by('link-w2'), rps, by('w2'), rps),
    ratioGoal({ id: 'scaling-link-w2-piscina', label: '(info) link, 2 threads / piscina in-process', op: '>=', target: 0.95 }, by('link-w2'), rps, by('piscina'), rps),
  ];
  // What one request cost where the fib ran: the service process (or processes), or the piscina server.
  const workCpu = (o: Outcome<HttpSample>): number =>
    figure(o, (s) => Object.entries(s.cpuPer1k).filter(([role]) => role !== 'front' || o.key === 'piscina').reduce((a, [, v]) => a + v, 0)).median;
  const text = [
    `GET ${path} (n ${fib.ms === undefined ? 'from --fib' : `calibrated: fib(${fib.n}) took ${fib.ms.toFixed(2)} ms in the bench process`}), ${CPU_CONNECTIONS} connections, unpinned (servers and wrk share both cores).`,
    `Measured CPU per request where the fib runs (ms, median): ${outcomes
      .filter((o) => o.samples.some((s) => s !== undefined))
      .map((o) => `${o.label} ${num(workCpu(o), 2)}`)
      .join('; ')}.`,
    '',
    ratioTable(outcomes, 'w1', ['front', 'service', 'service 1', 'service 2']),
    '',
    ...[...goals, ...info].map((g) => `- ${goalText(g)}`),
  ].join('\n');
  return { name: 'scaling', status: allRan(outcomes) ? 'ok' : 'partial', missing: needLink, text, goals, data: { fib, outcomes } };
}
