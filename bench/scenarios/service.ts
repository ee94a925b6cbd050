/**
 * Scenario `service`: GET /svc/hello through the real Mongrel2 to
 * `m2gate service` (1 and 2 worker threads) and, in the same run with the same
 * Mongrel2 config, to bench/minimal-handler.ts (the baseline).
 * Goal: m2gate service >= 0.95x the minimal handler's throughput.
 */
import type { BenchConfig } from '../lib/config.js';
import { startMongrel2 } from '../lib/front.js';
import { startMinimalHandler, startService } from '../lib/launch.js';
import type { HttpSample } from '../lib/measure.js';
import { allRan, ratioGoal, runRounds, type Variant } from '../lib/rounds.js';
import { goalText, type Goal, type ScenarioResult } from '../lib/report.js';
import { httpTable, threadTable } from '../lib/http-table.js';
import { describeHttp, httpVariant, missing } from '../lib/variant.js';
import { formatProfile, profileSummaries } from '../lib/cpuprofile.js';
import type { Spawned } from '../lib/proc.js';
import type { BenchConf } from '../lib/front.js';

const PATH = '/svc/hello';

/** Mongrel2 first (it binds the Handler endpoints), then the handler `start` makes. */
function behindMongrel2(cfg: BenchConfig, start: (conf: BenchConf) => Spawned) {
  return async (conf: BenchConf, started: Spawned[]) => {
    const m2 = await startMongrel2(conf, cfg.serverCpus);
    started.push(m2);
    const handler = start(conf);
    started.push(handler);
    return [
      { role: 'mongrel2', proc: m2 },
      { role: 'handler', proc: handler, threads: true },
    ];
  };
}

export async function serviceScenario(cfg: BenchConfig): Promise<ScenarioResult> {
  const needs = missing(cfg, ['wrk', 'mongrel2', 'm2gate']);
  if (needs.length > 0) {
    return { name: 'service', status: 'skipped', missing: needs, text: `SKIPPED: missing ${needs.join('; ')}`, goals: [], data: {} };
  }
  const variants: Array<Variant<HttpSample>> = [
    { key: 'minimal', label: 'Mongrel2 → minimal handler', run: () => httpVariant(cfg, behindMongrel2(cfg, (conf) => startMinimalHandler(cfg, conf)), PATH) },
    ...[1, 2].map((workers) => ({
      key: `service-w${workers}`,
      label: `Mongrel2 → m2gate service --workers ${workers}`,
      run: (round: number) => httpVariant(cfg, behindMongrel2(cfg, (conf) => startService(cfg, conf, workers, `service-w${workers}-r${round + 1}`)), PATH),
    })),
    {
      // Diagnostic, no goal: what the per-request info log line costs (one write(2) each).
      key: 'service-w1-quiet',
      label: 'Mongrel2 → m2gate service --workers 1 --log-level warn',
      run: (round: number) =>
        httpVariant(cfg, behindMongrel2(cfg, (conf) => startService(cfg, conf, 1, `service-w1-quiet-r${round + 1}`, ['--log-level', 'warn'])), PATH),
    },
  ];
  const outcomes = await runRounds(cfg, 'service', variants, describeHttp);
  const [minimal, w1, w2, quiet] = outcomes as [(typeof outcomes)[0], (typeof outcomes)[0], (typeof outcomes)[0], (typeof outcomes)[0]];
  const rps = (s: HttpSample): number => s.rps;
  const goals: Goal[] = [
    ratioGoal({ id: 'service-w1', label: 'service: m2gate service (1 worker) / minimal handler, req/s', op: '>=', target: 0.95 }, w1, rps, minimal, rps),
    ratioGoal({ id: 'service-w2', label: 'service: m2gate service (2 workers) / minimal handler, req/s', op: '>=', target: 0.95 }, w2, rps, minimal, rps),
  ];
  const profiles = cfg.profile ? profileSummaries(cfg.resultsDir, 'service-') : [];
  const text = [
    `GET ${PATH} through the real Mongrel2 (one Handler, JSON headers, tcp:// loopback), ${cfg.connections} connections.`,
    `The minimal handler uses m2gate's codec (parseRequest/encodeReply) and nothing else. CPU columns: CPU seconds per 1,000 requests.`,
    `'--log-level warn' is a diagnostic variant (no goal): the service without its per-request log line.`,
    '',
    httpTable(outcomes, 'minimal', ['mongrel2', 'handler']),
    '',
    threadTable(outcomes, 'handler'),
    '',
    ...goals.map(goalText),
    goalText(ratioGoal({ id: 'service-w1-quiet', label: '(diagnostic) m2gate service (1 worker, --log-level warn) / minimal handler, req/s', op: '>=', target: 0.95 }, quiet, rps, minimal, rps)),
    ...(cfg.profile ? ['', '(--profile: figures include profiler overhead)', ...profiles.map((p) => formatProfile(p.summary, p.label))] : []),
  ].join('\n');
  return { name: 'service', status: allRan(outcomes) ? 'ok' : 'partial', missing: [], text, goals, data: { outcomes, profiles } };
}
