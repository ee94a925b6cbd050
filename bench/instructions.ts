/**
 * bench:instructions — instructions per request, counted by valgrind's
 * callgrind, per process and thread class: a cost figure that does not move
 * when other work shares the machine (issue #15).
 *
 *   npm run bench:instructions [-- --requests N --warmup N --variant KEY --repeat N --dist DIR --json FILE]
 *
 * Every server process runs under callgrind; the load generator (a Node
 * keep-alive client, not under valgrind) sends exactly N requests after a
 * warm-up, and the counts between two dumps are divided by N. See
 * bench/README.md, "Instructions per request (callgrind)".
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR, ROOT, type BenchConfig } from './lib/config.js';
import { environment } from './lib/env.js';
import { callgrindMissing, valgrindVersion } from './lib/callgrind.js';
import { INSTR_VARIANTS, runInstrVariant, type InstrRun } from './lib/instr-variants.js';
import { idleTable, instrTable, ratios, repeatTable } from './lib/instr-table.js';
import { linkMissing } from './lib/link.js';
import { missing } from './lib/variant.js';
import { intOption } from './lib/options.js';

const DEFAULTS = { requests: 2000, warmup: 4000, concurrency: 4, repeat: 1, idle: 5 };

const HELP = `Usage: npm run bench:instructions -- [options]

  --requests N     measured requests per variant run (default ${DEFAULTS.requests})
  --warmup N       requests before the counters are zeroed (default ${DEFAULTS.warmup})
  --concurrency N  keep-alive connections of the load generator (default ${DEFAULTS.concurrency})
  --variant KEY    run only these (repeatable or comma-separated): ${INSTR_VARIANTS.map((v) => v.key).join(', ')}
  --idle S         seconds without load after the window, counted apart: what timers add (default ${DEFAULTS.idle}; 0: none)
  --repeat N       run each variant N times (alternating) and show how far the runs lie apart (default 1)
  --dist DIR       the built m2gate tree to drive (default: dist)
  --json FILE      where the JSON goes (default bench/results/instructions.json)
  --keep-logs      keep every run's temp directory (conf, logs, callgrind dumps)
  -h, --help       this text
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
      variant: { type: 'string', multiple: true },
      repeat: { type: 'string' },
      idle: { type: 'string' },
      dist: { type: 'string' },
      json: { type: 'string' },
      'keep-logs': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const options = {
    requests: intOption(values.requests, 'requests', DEFAULTS.requests, 1),
    warmup: intOption(values.warmup, 'warmup', DEFAULTS.warmup, 0),
    concurrency: intOption(values.concurrency, 'concurrency', DEFAULTS.concurrency, 1),
    idleS: intOption(values.idle, 'idle', DEFAULTS.idle, 0),
  };
  const repeat = intOption(values.repeat, 'repeat', DEFAULTS.repeat, 1);
  const keys = (values.variant ?? INSTR_VARIANTS.map((v) => v.key)).flatMap((s) => s.split(',')).map((s) => s.trim());
  const unknown = keys.filter((k) => !INSTR_VARIANTS.some((v) => v.key === k));
  if (unknown.length > 0) throw new Error(`unknown variant ${unknown.join(', ')} (have: ${INSTR_VARIANTS.map((v) => v.key).join(', ')})`);
  const variants = INSTR_VARIANTS.filter((v) => keys.includes(v.key));

  const resultsDir = join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const cfg: BenchConfig = {
    rounds: repeat,
    durationS: 0,
    warmupS: 0,
    connections: options.concurrency,
    // Unpinned: callgrind runs a process's threads one at a time anyway, and
    // counts instructions, not time, so the two cores only make the run shorter.
    serverCpus: undefined,
    loadCpus: undefined,
    m2gateBin: join(resolve(ROOT, values.dist ?? 'dist'), 'cli', 'm2gate.js'),
    resultsDir,
    profile: false,
    keepLogs: values['keep-logs'],
    quick: false,
    fibN: undefined,
    memoryRequests: 0,
    log: (line) => process.stdout.write(`${line}\n`),
  };

  // Everything a chosen variant needs, checked before anything starts: a run
  // takes minutes, and a missing program would otherwise show up half-way.
  const needs = new Set<string>([...callgrindMissing(), ...missing(cfg, ['m2gate'])]);
  if (variants.some((v) => v.needs.includes('mongrel2'))) for (const m of missing(cfg, ['mongrel2'])) needs.add(m);
  if (variants.some((v) => v.needs.includes('link'))) for (const m of linkMissing(cfg)) needs.add(m);
  if (needs.size > 0) {
    process.stderr.write(`bench:instructions: cannot run, missing: ${[...needs].join('; ')}\n(leave out variants with --variant)\n`);
    return 1;
  }

  const env = environment();
  const started = new Date();
  const header = [
    `m2gate bench:instructions, ${started.toISOString()}`,
    `node      ${env.node}; ${cpus()[0]?.model ?? 'cpu unknown'}, ${env.cores} cores, Linux ${env.kernel}`,
    `m2gate    ${env.m2gate}; driving ${cfg.m2gateBin}`,
    `others    ${env.mongrel2}; ${env.zeromq}; piscina ${env.piscina}; ${valgrindVersion()}`,
    `method    per run: fresh processes under callgrind, ${options.warmup} warm-up requests, dump, ${options.requests} requests, dump, ${options.idleS} s idle, dump;`,
    `          ${options.concurrency} keep-alive connections (Node client, not under valgrind); ${repeat} run(s) per variant, medians`,
  ];
  for (const line of header) process.stdout.write(`${line}\n`);

  const runs: InstrRun[] = [];
  const failures: string[] = [];
  for (let round = 0; round < repeat; round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const t0 = Date.now();
      process.stdout.write(`\n${v.label} (run ${round + 1}) ...\n`);
      try {
        const run = await runInstrVariant(cfg, v, round + 1, options);
        runs.push(run);
        const per = (n: number): string => Math.round(n / run.requests).toLocaleString('en-US');
        const total = run.processes.map((p) => {
          const all = p.threads.reduce((s, t) => s + t.instructions, 0);
          return `${p.label} ${per(all)} (${per(all - p.threads.reduce((s, t) => s + t.compile, 0))} without background compile)`;
        });
        process.stdout.write(`  instructions/request: ${total.join(', ')}; ${run.requests} requests in ${run.seconds.toFixed(1)} s, run ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
      } catch (err) {
        failures.push(`${v.label} (run ${round + 1}): ${(err as Error).message.split('\n')[0]}`);
        process.stdout.write(`  FAILED: ${(err as Error).stack ?? String(err)}\n`);
      }
    }
  }

  const byKey = new Map<string, InstrRun[]>();
  for (const v of variants) {
    const these = runs.filter((r) => r.key === v.key);
    if (these.length > 0) byKey.set(v.key, these);
  }
  const repeats = repeatTable(byKey);
  const idle = idleTable(byKey);
  const ratioRows = ratios(byKey).map((r) => `- ${r.label}: ${r.value.toFixed(2)}`);
  const text = [
    '',
    `Instructions per request (callgrind Ir, medians of ${repeat} run(s)), GET /svc/hello unless the variant says otherwise; ratios and totals leave out V8's background compiling:`,
    '',
    instrTable(byKey),
    '',
    ...(ratioRows.length > 0 ? ['Ratios of instructions per request:', '', ...ratioRows, ''] : []),
    ...(repeats === undefined ? [] : ['Repeatability:', '', repeats, '']),
    ...(idle === undefined ? [] : [`Without load (${options.idleS} s after the window, background compile left out):`, '', idle, '']),
    ...(failures.length > 0 ? [`FAILED runs: ${failures.join('; ')}`, ''] : []),
  ].join('\n');
  process.stdout.write(`${text}\n`);

  const mdFile = join(resultsDir, 'instructions.md');
  writeFileSync(mdFile, `# ${header[0]}\n\n\`\`\`text\n${header.slice(1).join('\n')}\n\`\`\`\n${text}`);
  const jsonFile = values.json === undefined ? join(resultsDir, 'instructions.json') : resolve(values.json);
  mkdirSync(dirname(jsonFile), { recursive: true });
  writeFileSync(jsonFile, `${JSON.stringify({ started: started.toISOString(), environment: env, options: { ...options, repeat, dist: cfg.m2gateBin }, runs, ratios: ratios(byKey) }, null, 1)}\n`);
  process.stdout.write(`report: ${mdFile}\njson: ${jsonFile}\n`);
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench:instructions: ${(err as Error).message}\n`);
    process.exitCode = 2;
  },
);
