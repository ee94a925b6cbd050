/**
 * m2gate's benchmark suite: one entry for every scenario.
 *
 *   node --import tsx bench/index.ts [--scenario NAME]... [--quick] [--json FILE]
 *
 * Scenarios (default, in this order): front, static, scaling, isolation,
 * imbalance, call, protocol, memory; also by name only: service, gateway (the detailed forms of
 * front's Mongrel2 and gateway comparisons).
 * See bench/README.md for what each measures, the method and the latest figures.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { BENCH_DIR, ROOT, type BenchConfig } from './lib/config.js';
import { environment, formatEnvironment } from './lib/env.js';
import { canPin } from './lib/proc.js';
import { hasLink } from './lib/link.js';
import { goalChart } from './lib/chart.js';
import { goalText, type ScenarioResult } from './lib/report.js';
import { serviceScenario } from './scenarios/service.js';
import { gatewayScenario, staticScenario } from './scenarios/gateway.js';
import { frontScenario } from './scenarios/front.js';
import { scalingScenario } from './scenarios/scaling.js';
import { isolationScenario } from './scenarios/isolation.js';
import { memoryScenario } from './scenarios/memory.js';
import { imbalanceScenario } from './scenarios/imbalance.js';
import { markdownReport } from './lib/markdown.js';
import { callScenario } from './scenarios/call.js';
import { protocolScenario } from './scenarios/protocol.js';
import { intOption } from './lib/options.js';

const SCENARIOS: Record<string, (cfg: BenchConfig) => Promise<ScenarioResult>> = {
  front: frontScenario,
  static: staticScenario,
  scaling: scalingScenario,
  isolation: isolationScenario,
  imbalance: imbalanceScenario,
  call: callScenario,
  protocol: protocolScenario,
  memory: memoryScenario,
  service: serviceScenario,
  gateway: gatewayScenario,
};
/** What runs without --scenario: issue #7's six, the static Dir goal and issue #6's imbalance. */
const DEFAULT_SCENARIOS = ['front', 'static', 'scaling', 'isolation', 'imbalance', 'call', 'protocol', 'memory'];

const HELP = `Usage: node --import tsx bench/index.ts [options]

  --scenario NAME    front, static, scaling, isolation, imbalance, call, protocol, memory (the default:
                     all of these), or service, gateway (by name only); repeatable
  --quick            1 round of 1 s windows, 20,000 memory requests, no context-only variants:
                     a smoke run (under 2 minutes), not figures
  --json FILE        write every figure, sample and the environment as JSON
  --rounds N         rounds per scenario (default 3)
  --duration S       seconds per measured window (default 5)
  --warmup S         seconds of warm-up load before each window (default 1)
  --connections N    wrk connections / messages in flight (default 50)
  --no-pin           do not pin (default: servers on CPU 0, wrk on CPU 1, with taskset)
  --dist DIR         the built m2gate tree to drive (default: dist, from npm run build)
  --profile          run m2gate's processes under node --cpu-prof and summarise the profiles
  --keep-logs        keep every variant's temp directory (config, process logs)
  --chart FILE       where the SVG chart of the goal ratios goes (default bench/results/chart.svg)
  --report FILE      where the Markdown report goes (default bench/results/report.md)
  --fib N            n of the CPU route /svc/fib/:n (default: calibrated to about 2 ms)
  --memory-requests N  requests before the memory scenario's last reading (default 1,000,000)
  -h, --help         this text
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', multiple: true },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      dist: { type: 'string' },
      profile: { type: 'boolean', default: false },
      'keep-logs': { type: 'boolean', default: false },
      chart: { type: 'string' },
      report: { type: 'string' },
      fib: { type: 'string' },
      'memory-requests': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const names = (values.scenario ?? DEFAULT_SCENARIOS).flatMap((s) => s.split(',')).map((s) => s.trim());
  const unknown = names.filter((n) => !(n in SCENARIOS));
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')} (have: ${Object.keys(SCENARIOS).join(', ')})`);

  const pin = !values['no-pin'] && canPin(availableParallelism());
  const resultsDir = join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  // Profiles of an earlier run would be summarised with this one's.
  if (values.profile) rmSync(join(resultsDir, 'profiles'), { recursive: true, force: true });
  const distDir = resolve(ROOT, values.dist ?? 'dist');
  const cfg: BenchConfig = {
    rounds: intOption(values.rounds, 'rounds', values.quick ? 1 : 3, 1),
    durationS: intOption(values.duration, 'duration', values.quick ? 1 : 5, 1),
    warmupS: intOption(values.warmup, 'warmup', 1, 0),
    connections: intOption(values.connections, 'connections', 50, 1),
    serverCpus: pin ? '0' : undefined,
    loadCpus: pin ? '1' : undefined,
    m2gateBin: join(distDir, 'cli', 'm2gate.js'),
    resultsDir,
    profile: values.profile,
    keepLogs: values['keep-logs'],
    quick: values.quick,
    fibN: values.fib === undefined ? undefined : intOption(values.fib, 'fib', 0, 1),
    memoryRequests: intOption(values['memory-requests'], 'memory-requests', values.quick ? 20_000 : 1_000_000, 0),
    log: (line) => process.stdout.write(`${line}\n`),
  };

  const env = environment();
  const started = new Date();
  const out = (s = ''): void => void process.stdout.write(`${s}\n`);
  const header = [
    formatEnvironment(env),
    `method    ${cfg.rounds} round(s) × ${cfg.durationS} s windows after ${cfg.warmupS} s warm-up, ${cfg.connections} connections, ` +
      `fresh processes per variant, order reversed every other round; medians (min–max) over rounds`,
    `pinning   ${pin ? 'servers (fronts, handlers, services) on CPU 0, wrk (1 thread) on CPU 1, via taskset, except where a scenario says unpinned' : values['no-pin'] ? 'off (--no-pin)' : 'off (needs taskset and 2+ CPUs)'}`,
    `driving   ${cfg.m2gateBin} (m2gate link ${hasLink(cfg) ? 'present' : 'NOT in this build: link variants skipped'})`,
    `scenarios ${names.join(', ')}`,
    ...(values.quick ? ['          --quick: a smoke run; do not quote these figures'] : []),
  ];
  out(`m2gate benchmarks, ${started.toISOString()}`);
  for (const line of header) out(line);

  const results: ScenarioResult[] = [];
  for (const name of names) {
    out(`\n=== ${name} ===`);
    const t0 = Date.now();
    let result: ScenarioResult;
    try {
      result = await SCENARIOS[name]!(cfg);
    } catch (err) {
      result = { name, status: 'partial', missing: [], text: `FAILED: ${(err as Error).stack ?? String(err)}`, goals: [], data: {} };
    }
    results.push(result);
    out(`\n--- ${name} (${((Date.now() - t0) / 1000).toFixed(0)} s) ---`);
    out(result.text);
  }

  const goals = results.flatMap((r) => r.goals);
  out('\n=== summary ===');
  for (const g of goals) out(goalText(g));
  const missingAll = [...new Set(results.flatMap((r) => r.missing))];
  if (missingAll.length > 0) out(`\nMISSING (some variants did not run): ${missingAll.join('; ')}`);
  const incomplete = results.filter((r) => r.status !== 'ok');
  if (incomplete.length > 0) out(`INCOMPLETE scenarios: ${incomplete.map((r) => `${r.name} (${r.status})`).join(', ')}`);

  let chartName: string | undefined;
  if (goals.length > 0) {
    const chartFile = values.chart === undefined ? join(resultsDir, 'chart.svg') : resolve(values.chart);
    mkdirSync(dirname(chartFile), { recursive: true });
    writeFileSync(chartFile, goalChart(goals, `m2gate goal ratios, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC${values.quick ? ' (--quick)' : ''}`));
    out(`\nchart: ${chartFile}`);
    chartName = chartFile;
  }
  const reportFile = values.report === undefined ? join(resultsDir, 'report.md') : resolve(values.report);
  mkdirSync(dirname(reportFile), { recursive: true });
  writeFileSync(reportFile, markdownReport({ title: `m2gate benchmarks, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC${values.quick ? ' (--quick)' : ''}`, header, results, goals, missing: missingAll, chart: chartName === undefined ? undefined : relative(dirname(reportFile), chartName) }));
  out(`report: ${reportFile}`);
  if (values.json !== undefined) {
    const file = isAbsolute(values.json) ? values.json : resolve(values.json);
    mkdirSync(dirname(file), { recursive: true });
    const config = { ...cfg, log: undefined, pinned: pin, quick: values.quick };
    writeFileSync(file, `${JSON.stringify({ started: started.toISOString(), environment: env, config, goals, scenarios: results }, null, 1)}\n`);
    out(`json: ${file}`);
  }
  return incomplete.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exitCode = 2;
  },
);
