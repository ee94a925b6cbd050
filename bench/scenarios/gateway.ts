/**
 * Scenario `gateway`, two parts.
 *
 * Handler: GET /svc/hello through `m2gate gateway` → `m2gate service --workers 1`
 * against the real Mongrel2 → the same service, with the same mongrel2.conf.
 * Goals: gateway req/s >= Mongrel2's; gateway CPU per request <= Mongrel2's
 * (front processes only, read from /proc).
 *
 * Static: a 1 KiB file from the gateway's Dir against bare node:http sending
 * the same bytes from memory (the baseline); node:http reading the file per
 * request and Mongrel2's Dir run alongside for context. Goal: >= 0.8x.
 */
import type { BenchConfig } from '../lib/config.js';
import { startMongrel2, STATIC_BYTES, STATIC_NAME, type BenchConf } from '../lib/front.js';
import { startGateway, startService, startStaticServer } from '../lib/launch.js';
import type { HttpSample, Role } from '../lib/measure.js';
import type { Spawned } from '../lib/proc.js';
import { allRan, ratioGoal, runRounds, type Outcome, type Variant } from '../lib/rounds.js';
import { goalText, type Goal, type ScenarioResult } from '../lib/report.js';
import { httpTable, threadTable } from '../lib/http-table.js';
import { describeHttp, httpVariant, missing } from '../lib/variant.js';
import { formatProfile, profileSummaries } from '../lib/cpuprofile.js';

const SVC_PATH = '/svc/hello';
const STATIC_PATH = `/static/${STATIC_NAME}`;

/** The static variants (also the `static` scenario on its own). */
async function staticOutcomes(cfg: BenchConfig, needM2: string[]): Promise<Array<Outcome<HttpSample>>> {
  const only = (start: (conf: BenchConf) => Spawned | Promise<Spawned>) => async (conf: BenchConf, started: Spawned[]) => {
    const proc = await start(conf);
    started.push(proc);
    return [{ role: 'front', proc }];
  };
  // node:http readFile and Mongrel2's Dir are context (no goal): left out of --quick.
  const staticVariants: Array<Variant<HttpSample>> = [
    { key: 'node-memory', label: 'node:http, bytes in memory', run: () => httpVariant(cfg, only((conf) => startStaticServer(cfg, conf, 'memory')), STATIC_PATH) },
    { key: 'gateway-dir', label: 'm2gate gateway Dir', run: (round) => httpVariant(cfg, only((conf) => startGateway(cfg, conf, `gateway-dir-r${round + 1}`)), STATIC_PATH) },
    ...(cfg.quick
      ? []
      : [
          { key: 'node-readfile', label: 'node:http, readFile per request', run: () => httpVariant(cfg, only((conf) => startStaticServer(cfg, conf, 'readfile')), STATIC_PATH) },
          { key: 'mongrel2-dir', label: 'Mongrel2 Dir', missing: needM2, run: () => httpVariant(cfg, only((conf) => startMongrel2(conf, cfg.serverCpus)), STATIC_PATH) },
        ]),
  ];
  return runRounds(cfg, 'static', staticVariants, describeHttp);
}

const staticGoal = (nodeMem: Outcome<HttpSample>, gwDir: Outcome<HttpSample>): Goal =>
  ratioGoal({ id: 'static-rps', label: 'static: gateway Dir / node:http (memory), req/s', op: '>=', target: 0.8 }, gwDir, (s) => s.rps, nodeMem, (s) => s.rps);

/**
 * Scenario `static`: the static half of `gateway` alone (the handler half is
 * part of `front`, which runs by default).
 */
export async function staticScenario(cfg: BenchConfig): Promise<ScenarioResult> {
  const needBase = missing(cfg, ['wrk', 'm2gate']);
  if (needBase.length > 0) return { name: 'static', status: 'skipped', missing: needBase, text: `SKIPPED: missing ${needBase.join('; ')}`, goals: [], data: {} };
  const needM2 = missing(cfg, ['mongrel2']);
  const statics = await staticOutcomes(cfg, needM2);
  const goals = [staticGoal(statics[0]!, statics[1]!)];
  const text = [
    `GET ${STATIC_PATH} (${STATIC_BYTES.length} bytes, text/plain), ${cfg.connections} connections.`,
    '',
    httpTable(statics, 'node-memory', ['front']),
    '',
    ...goals.map((g) => `- ${goalText(g)}`),
  ].join('\n');
  return { name: 'static', status: allRan(statics) ? 'ok' : 'partial', missing: needM2, text, goals, data: { static: statics } };
}

export async function gatewayScenario(cfg: BenchConfig): Promise<ScenarioResult> {
  const needBase = missing(cfg, ['wrk', 'm2gate']);
  if (needBase.length > 0) {
    return { name: 'gateway', status: 'skipped', missing: needBase, text: `SKIPPED: missing ${needBase.join('; ')}`, goals: [], data: {} };
  }
  const needM2 = missing(cfg, ['mongrel2']);

  const viaMongrel2 = async (conf: BenchConf, started: Spawned[]) => {
    const front = await startMongrel2(conf, cfg.serverCpus);
    started.push(front);
    const service = startService(cfg, conf, 1);
    started.push(service);
    return [
      { role: 'front', proc: front },
      { role: 'service', proc: service, threads: true },
    ];
  };
  const viaGateway = (conf: BenchConf, started: Spawned[], round: number): Promise<Role[]> => {
    const front = startGateway(cfg, conf, `gateway-r${round + 1}`);
    started.push(front);
    const service = startService(cfg, conf, 1);
    started.push(service);
    return Promise.resolve([
      { role: 'front', proc: front, threads: true },
      { role: 'service', proc: service, threads: true },
    ]);
  };
  const handlerVariants: Array<Variant<HttpSample>> = [
    { key: 'mongrel2', label: 'Mongrel2 → m2gate service', missing: needM2, run: () => httpVariant(cfg, viaMongrel2, SVC_PATH) },
    { key: 'gateway', label: 'm2gate gateway → m2gate service', run: (round) => httpVariant(cfg, (conf, started) => viaGateway(conf, started, round), SVC_PATH) },
  ];
  const handler = await runRounds(cfg, 'gateway', handlerVariants, describeHttp);

  const statics = await staticOutcomes(cfg, needM2);

  const [m2, gw] = handler as [(typeof handler)[0], (typeof handler)[0]];
  const [nodeMem, gwDir] = statics as [(typeof statics)[0], (typeof statics)[0]];
  const rps = (s: HttpSample): number => s.rps;
  const frontCpu = (s: HttpSample): number => s.cpuPer1k.front ?? Number.NaN;
  const goals: Goal[] = [
    ratioGoal({ id: 'gateway-rps', label: 'gateway: gateway / Mongrel2 front, req/s', op: '>=', target: 1 }, gw, rps, m2, rps),
    ratioGoal({ id: 'gateway-cpu', label: 'gateway: gateway / Mongrel2 front, CPU per request', op: '<=', target: 1 }, gw, frontCpu, m2, frontCpu),
    staticGoal(nodeMem, gwDir),
  ];
  const profiles = cfg.profile ? profileSummaries(cfg.resultsDir, 'gateway-') : [];
  const text = [
    `Handler: GET ${SVC_PATH} through each front to one m2gate service --workers 1 (tcp:// loopback), ${cfg.connections} connections.`,
    'CPU columns: CPU seconds per 1,000 requests of each process.',
    '',
    httpTable(handler, 'mongrel2', ['front', 'service']),
    '',
    threadTable(handler, 'front'),
    '',
    `Static: GET ${STATIC_PATH} (${STATIC_BYTES.length} bytes, text/plain), ${cfg.connections} connections.`,
    '',
    httpTable(statics, 'node-memory', ['front']),
    '',
    ...goals.map(goalText),
    ...(cfg.profile ? ['', '(--profile: figures include profiler overhead)', ...profiles.map((p) => formatProfile(p.summary, p.label))] : []),
  ].join('\n');
  const status = allRan(handler) && allRan(statics) ? 'ok' : 'partial';
  return { name: 'gateway', status, missing: needM2, text, goals, data: { handler, static: statics, profiles } };
}
