/**
 * Scenario `protocol`: runs the mitata micro-benchmark bench/protocol.ts in its
 * own process (pinned to the server CPUs) and tabulates its JSON output.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import type { BenchConfig } from '../lib/config.js';
import { BENCH_DIR, ROOT } from '../lib/config.js';
import { spawnPinned } from '../lib/proc.js';
import { num, table, type ScenarioResult } from '../lib/report.js';

interface MitataStats {
  avg: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
}

interface MitataOutput {
  benchmarks: Array<{ alias: string; group: number; runs: Array<{ stats?: MitataStats; error?: unknown }> }>;
}

export interface MicroResult {
  name: string;
  group: number;
  avgNs: number;
  p50Ns: number;
  p99Ns: number;
}

/** Reads mitata's `run()` result as bench/protocol.ts writes it with --json. */
export function readMitata(text: string): MicroResult[] {
  const out = JSON.parse(text) as MitataOutput;
  return out.benchmarks.map((b) => {
    const s = b.runs[0]?.stats;
    return { name: b.alias, group: b.group, avgNs: s?.avg ?? Number.NaN, p50Ns: s?.p50 ?? Number.NaN, p99Ns: s?.p99 ?? Number.NaN };
  });
}

export async function protocolScenario(cfg: BenchConfig): Promise<ScenarioResult> {
  const jsonFile = join(cfg.resultsDir, 'protocol-mitata.json');
  const logFile = join(cfg.resultsDir, 'protocol.log');
  const proc = spawnPinned('bench/protocol.ts', process.execPath, ['--import', 'tsx', join(BENCH_DIR, 'protocol.ts'), '--json', jsonFile], { cpus: cfg.serverCpus, cwd: ROOT, logFile });
  const timer = setTimeout(() => void proc.stop(1000), 300_000);
  const [code] = (await once(proc.child, 'exit')) as [number | null];
  clearTimeout(timer);
  if (code !== 0) {
    return { name: 'protocol', status: 'partial', missing: [], text: `FAILED: bench/protocol.ts exited with ${String(code)}\n${proc.logTail()}`, goals: [], data: {} };
  }
  const results = readMitata(readFileSync(jsonFile, 'utf8'));
  const first = new Map<number, number>();
  for (const r of results) if (!first.has(r.group)) first.set(r.group, r.avgNs);
  const rows = results.map((r) => [r.name, num(r.avgNs, 0), num(r.p50Ns, 0), num(r.p99Ns, 0), `${num(r.avgNs / first.get(r.group)!, 2)}x`]);
  const text = [
    'mitata, one process, per operation (ns); "vs first" compares with the first line of its group.',
    '',
    table(['benchmark', 'avg ns', 'p50 ns', 'p99 ns', 'vs first'], rows),
  ].join('\n');
  return { name: 'protocol', status: 'ok', missing: [], text, goals: [], data: { results } };
}
