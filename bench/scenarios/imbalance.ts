/**
 * Scenario `imbalance` (issue #6's goal for the m2gate link): two services ×
 * --workers 1 behind the gateway, one of them slowed by a CPU hog sharing its
 * core, on the CPU route `/svc/fib/:n`. PUSH deals requests round-robin
 * whatever a peer's backlog (§5.1), so half the requests queue at the slow
 * service; the link is meant to give work to whichever service has room.
 * Goal: the link's p99 below PUSH/SUB's in the same run.
 *
 * Placement (needs taskset and 2 CPUs): service 1 on CPU 0; service 2 and a
 * spinning `node -e 'for(;;){}'` on CPU 1; gateway and wrk unpinned.
 */
import type { BenchConfig } from '../lib/config.js';
import type { BenchConf } from '../lib/front.js';
import { startGateway, startHog, startService } from '../lib/launch.js';
import type { HttpSample, Role } from '../lib/measure.js';
import type { Spawned } from '../lib/proc.js';
import { allRan, ratioGoal, runRounds, type Outcome, type Variant } from '../lib/rounds.js';
import { goalText, type Goal, type ScenarioResult } from '../lib/report.js';
import { ratioTable } from '../lib/ratio-table.js';
import { describeHttp, httpVariant, missing } from '../lib/variant.js';
import { linkMissing } from '../lib/link.js';
import { fibN } from '../lib/fib-n.js';
import { CPU_CONNECTIONS } from './scaling.js';

type Start = (conf: BenchConf, started: Spawned[]) => Promise<Role[]>;

export async function imbalanceScenario(cfg: BenchConfig): Promise<ScenarioResult> {
  const needs = missing(cfg, ['wrk', 'm2gate']);
  // Pinning is what makes one service slow; without it there is nothing to compare.
  if (cfg.serverCpus === undefined) needs.push('pinning (taskset and 2 CPUs; not --no-pin)');
  if (needs.length > 0) return { name: 'imbalance', status: 'skipped', missing: needs, text: `SKIPPED: missing ${needs.join('; ')}`, goals: [], data: {} };
  const needLink = linkMissing(cfg);
  const fib = fibN(cfg);
  const path = `/svc/fib/${fib.n}`;

  const start = (link: boolean): Start => (conf, started) => {
    const front = startGateway(cfg, conf, undefined, undefined, { cpus: null });
    started.push(front);
    const fast = startService(cfg, conf, 1, undefined, [], { link, cpus: '0', logName: 'service-1.log' });
    started.push(fast);
    const slow = startService(cfg, conf, 1, undefined, [], { link, cpus: '1', logName: 'service-2.log' });
    started.push(slow);
    const hog = startHog(cfg, conf, '1');
    started.push(hog);
    return Promise.resolve([
      { role: 'front', proc: front },
      { role: 'service 1', proc: fast },
      { role: 'service 2 (hogged)', proc: slow },
    ]);
  };
  const load = { connections: CPU_CONNECTIONS, loadCpus: null, serverCpus: null } as const;
  const variants: Array<Variant<HttpSample>> = [
    { key: 'pushsub', label: 'PUSH/SUB, 2 services, one hogged', run: () => httpVariant(cfg, start(false), path, load) },
    { key: 'link', label: 'link, 2 services, one hogged', missing: needLink, run: () => httpVariant(cfg, start(true), path, { ...load, conf: { link: true } }) },
  ];
  const outcomes = await runRounds(cfg, 'imbalance', variants, describeHttp);
  const by = (key: string): Outcome<HttpSample> => outcomes.find((o) => o.key === key)!;
  const p99 = (s: HttpSample): number => s.p99Ms;
  const rps = (s: HttpSample): number => s.rps;
  const goals: Goal[] = [ratioGoal({ id: 'imbalance-p99', label: 'imbalance: link / PUSH/SUB, p99 with one service hogged', op: '<=', target: 1 }, by('link'), p99, by('pushsub'), p99)];
  const info = [ratioGoal({ id: 'imbalance-rps', label: '(info) imbalance: link / PUSH/SUB, req/s', op: '>=', target: 1 }, by('link'), rps, by('pushsub'), rps)];
  const text = [
    `GET ${path}, ${CPU_CONNECTIONS} connections; service 1 on CPU 0, service 2 sharing CPU 1 with a spinning process; gateway and wrk unpinned.`,
    "The per-service CPU columns show how the work was shared (the hogged service's CPU is what it got).",
    '',
    ratioTable(outcomes, 'pushsub', ['front', 'service 1', 'service 2 (hogged)']),
    '',
    ...[...goals, ...info].map((g) => `- ${goalText(g)}`),
  ].join('\n');
  return { name: 'imbalance', status: allRan(outcomes) ? 'ok' : 'partial', missing: needLink, text, goals, data: { fib, outcomes } };
}
