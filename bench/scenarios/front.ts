/**
 * Scenario `front` (issue #7, 1): front overhead on a trivial route, every
 * front in the same run, against bare node:http.
 *
 *   bare node:http (baseline) and Fastify      GET /hello
 *   m2gate app route (the demo app)            GET /app/hello, answered in the gateway
 *   m2gate gateway → m2gate service            GET /svc/hello over PUSH/SUB, and over the m2gate link
 *   real Mongrel2 → m2gate service             GET /svc/hello
 *   real Mongrel2 → minimal zeromq.js handler  GET /svc/hello
 *
 * Servers are pinned to the server CPU (one core between them), wrk to the
 * other, so req/s is the inverse of the servers' CPU per request; the table
 * gives both, with ratios to bare node:http. Services run `--workers 1`.
 * Goals: app route >= 0.9x node:http; gateway + service CPU per request <=
 * Mongrel2 + minimal handler; link >= 0.95x PUSH/SUB (issue #6);
 * gateway → service >= 1x Mongrel2 → service and Mongrel2 → service >= 0.95x
 * the minimal handler, as in the `gateway` and `service` scenarios.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR, type BenchConfig } from '../lib/config.js';
import { startMongrel2, type BenchConf } from '../lib/front.js';
import { demoApp, startGateway, startHelloServer, startMinimalHandler, startService } from '../lib/launch.js';
import type { HttpSample, Role } from '../lib/measure.js';
import type { Spawned } from '../lib/proc.js';
import { allRan, ratioGoal, runRounds, type Outcome, type Variant } from '../lib/rounds.js';
import { goalText, type Goal, type ScenarioResult } from '../lib/report.js';
import { threadTable } from '../lib/http-table.js';
import { ratioTable, totalCpu } from '../lib/ratio-table.js';
import { describeHttp, httpVariant, missing } from '../lib/variant.js';
import { linkMissing } from '../lib/link.js';

type Start = (conf: BenchConf, started: Spawned[]) => Promise<Role[]>;

export async function frontScenario(cfg: BenchConfig): Promise<ScenarioResult> {
  const needBase = missing(cfg, ['wrk', 'm2gate']);
  if (needBase.length > 0) return { name: 'front', status: 'skipped', missing: needBase, text: `SKIPPED: missing ${needBase.join('; ')}`, goals: [], data: {} };
  const needM2 = missing(cfg, ['mongrel2']);
  const needLink = linkMissing(cfg);
  const needFastify = existsSync(join(BENCH_DIR, 'node_modules', 'fastify')) ? [] : ['Fastify (cd bench && npm install)'];

  const alone = (start: (conf: BenchConf) => Spawned): Start => (conf, started) => {
    const proc = start(conf);
    started.push(proc);
    return Promise.resolve([{ role: 'front', proc, threads: true }]);
  };
  const gatewayTo = (link: boolean): Start => (conf, started) => {
    const front = startGateway(cfg, conf, undefined);
    started.push(front);
    const handler = startService(cfg, conf, 1, undefined, [], { link });
    started.push(handler);
    return Promise.resolve([
      { role: 'front', proc: front, threads: true },
      { role: 'handler', proc: handler, threads: true },
    ]);
  };
  const mongrel2To = (start: (conf: BenchConf) => Spawned): Start => async (conf, started) => {
    const front = await startMongrel2(conf, cfg.serverCpus);
    started.push(front);
    const handler = start(conf);
    started.push(handler);
    return [
      { role: 'front', proc: front },
      { role: 'handler', proc: handler, threads: true },
    ];
  };

  const variants: Array<Variant<HttpSample>> = [
    { key: 'node', label: 'bare node:http', run: () => httpVariant(cfg, alone((conf) => startHelloServer(cfg, conf, 'node')), '/hello') },
    { key: 'fastify', label: 'Fastify', missing: needFastify, run: () => httpVariant(cfg, alone((conf) => startHelloServer(cfg, conf, 'fastify')), '/hello') },
    { key: 'app', label: 'm2gate app route (/app/hello)', run: () => httpVariant(cfg, alone((conf) => startGateway(cfg, conf, undefined, demoApp(cfg))), '/app/hello') },
    { key: 'gw-pushsub', label: 'm2gate gateway → service, PUSH/SUB', run: () => httpVariant(cfg, gatewayTo(false), '/svc/hello') },
    { key: 'gw-link', label: 'm2gate gateway → service, link', missing: needLink, run: () => httpVariant(cfg, gatewayTo(true), '/svc/hello', { conf: { link: true } }) },
    { key: 'm2-service', label: 'Mongrel2 → m2gate service', missing: needM2, run: () => httpVariant(cfg, mongrel2To((conf) => startService(cfg, conf, 1)), '/svc/hello') },
    { key: 'm2-minimal', label: 'Mongrel2 → minimal zeromq.js handler', missing: needM2, run: () => httpVariant(cfg, mongrel2To((conf) => startMinimalHandler(cfg, conf)), '/svc/hello') },
  ];
  const outcomes = await runRounds(cfg, 'front', variants, describeHttp);
  const by = (key: string): Outcome<HttpSample> => outcomes.find((o) => o.key === key)!;
  const rps = (s: HttpSample): number => s.rps;
  const frontCpu = (s: HttpSample): number => s.cpuPer1k.front ?? Number.NaN;
  const goals: Goal[] = [
    ratioGoal({ id: 'front-app', label: 'front: app route / bare node:http, req/s', op: '>=', target: 0.9 }, by('app'), rps, by('node'), rps),
    ratioGoal({ id: 'front-gw-m2', label: 'front: gateway → service / Mongrel2 → service, req/s', op: '>=', target: 1 }, by('gw-pushsub'), rps, by('m2-service'), rps),
    ratioGoal({ id: 'front-gw-m2-cpu', label: 'front: gateway / Mongrel2 process, CPU per request', op: '<=', target: 1 }, by('gw-pushsub'), frontCpu, by('m2-service'), frontCpu),
    ratioGoal({ id: 'front-svc-minimal', label: 'front: Mongrel2 → service / → minimal handler, req/s', op: '>=', target: 0.95 }, by('m2-service'), rps, by('m2-minimal'), rps),
    ratioGoal({ id: 'front-cpu', label: 'front: gateway + service / Mongrel2 + minimal, server CPU per request', op: '<=', target: 1 }, by('gw-pushsub'), totalCpu, by('m2-minimal'), totalCpu),
    ratioGoal({ id: 'front-link', label: 'front: link / PUSH/SUB (gateway → service), req/s', op: '>=', target: 0.95 }, by('gw-link'), rps, by('gw-pushsub'), rps),
  ];
  // The goals above take PUSH/SUB for "gateway → service"; the link is what `m2gate start`
  // runs, so the same two comparisons over it are shown beside them.
  const info: Goal[] = [
    ratioGoal({ id: 'front-link-m2', label: '(info) front: gateway → service over the link / Mongrel2 → service, req/s', op: '>=', target: 1 }, by('gw-link'), rps, by('m2-service'), rps),
    ratioGoal({ id: 'front-link-cpu', label: '(info) front: gateway + service over the link / Mongrel2 + minimal, server CPU per request', op: '<=', target: 2 }, by('gw-link'), totalCpu, by('m2-minimal'), totalCpu),
  ];
  const text = [
    `Trivial route, ${cfg.connections} connections; services run --workers 1. 'server CPU s/1k': CPU seconds per 1,000 requests of all server processes together`,
    '(front + handler), from /proc; ratios are to bare node:http. Per-role CPU: `front` is the HTTP-facing process, `handler` the service or handler behind it.',
    '',
    ratioTable(outcomes, 'node', ['front', 'handler']),
    '',
    threadTable(outcomes, 'front'),
    '',
    threadTable(outcomes, 'handler'),
    '',
    ...[...goals, ...info].map((g) => `- ${goalText(g)}`),
  ].join('\n');
  return { name: 'front', status: allRan(outcomes) ? 'ok' : 'partial', missing: [...needFastify, ...needM2, ...needLink], text, goals, data: { outcomes } };
}
