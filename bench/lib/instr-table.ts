/**
 * The tables of bench:instructions: instructions per request by variant,
 * process and thread class (medians over repeated runs), the ratios the
 * issue asks for, and how far repeated runs of a variant lie apart.
 */
import type { ThreadClass } from './callgrind.js';
import type { InstrRun } from './instr-variants.js';
import { num, table } from './report.js';
import { spread } from './stats.js';

const CLASSES: ThreadClass[] = ['main', 'worker', 'zmq', 'other'];
const CLASS_NAMES: Record<ThreadClass, string> = { main: 'main (event loop)', worker: 'worker thread', zmq: 'libzmq I/O', other: 'other (V8, libuv, …)' };

/** Instructions per request of one run: process label → thread class → count, and the process totals. */
export function perRequest(run: InstrRun): Map<string, Map<ThreadClass | 'total', number>> {
  const out = new Map<string, Map<ThreadClass | 'total', number>>();
  for (const p of run.processes) {
    const m = new Map<ThreadClass | 'total', number>();
    for (const t of p.threads) m.set(t.cls, (m.get(t.cls) ?? 0) + t.instructions / run.requests);
    m.set('total', p.threads.reduce((s, t) => s + t.instructions, 0) / run.requests);
    out.set(p.label, m);
  }
  return out;
}

/** All processes of a run together, per request. */
export const runTotal = (run: InstrRun): number => run.processes.reduce((s, p) => s + p.threads.reduce((a, t) => a + t.instructions, 0), 0) / run.requests;

const median = (xs: number[]): number => (xs.length === 0 ? Number.NaN : spread(xs).median);

/** The median over `runs` of one cell (a process's class or total, or '*' for the variant's total). */
export function cell(runs: InstrRun[], process: string, what: ThreadClass | 'total'): number {
  if (process === '*') return median(runs.map(runTotal));
  return median(runs.map((r) => perRequest(r).get(process)?.get(what)).filter((x): x is number => x !== undefined));
}

/** The processes of a variant's runs, in start order. */
const processesOf = (runs: InstrRun[]): string[] => [...new Set(runs.flatMap((r) => r.processes.map((p) => p.label)))];

/** A ratio between the variant totals (or one process's totals) of two variants, when both ran. */
export interface InstrRatio {
  label: string;
  value: number;
}

export function ratios(byKey: Map<string, InstrRun[]>): InstrRatio[] {
  const get = (key: string, process = '*'): number => {
    const runs = byKey.get(key);
    return runs === undefined ? Number.NaN : cell(runs, process, 'total');
  };
  const r = (label: string, a: number, b: number): InstrRatio => ({ label, value: a / b });
  return [
    r('m2gate service / minimal handler (the handler process, behind Mongrel2)', get('m2-service', 'm2gate service'), get('m2-minimal', 'minimal handler')),
    r('Mongrel2 + m2gate service / Mongrel2 + minimal handler', get('m2-service'), get('m2-minimal')),
    r('gateway + service, PUSH/SUB / Mongrel2 + minimal handler', get('gw-pushsub'), get('m2-minimal')),
    r('gateway + service, link / Mongrel2 + minimal handler', get('gw-link'), get('m2-minimal')),
    r('gateway process / Mongrel2 process (both in front of m2gate service, PUSH/SUB)', get('gw-pushsub', 'm2gate gateway'), get('m2-service', 'Mongrel2')),
    r('link / PUSH/SUB (gateway + service)', get('gw-link'), get('gw-pushsub')),
    r('app route / bare node:http', get('app'), get('node')),
  ].filter((x) => Number.isFinite(x.value));
}

/** The ratio column of a variant's total row: to its baseline as the issue pairs them. */
const BASELINE: Record<string, string> = { 'm2-service': 'm2-minimal', 'gw-pushsub': 'm2-minimal', 'gw-link': 'm2-minimal', app: 'node' };

/** The main table: one row per process and thread class, a total per process and per variant. */
export function instrTable(byKey: Map<string, InstrRun[]>): string {
  const rows: string[][] = [];
  for (const [key, runs] of byKey) {
    const label = runs[0]!.label;
    for (const process of processesOf(runs)) {
      for (const cls of CLASSES) {
        const v = cell(runs, process, cls);
        if (Number.isFinite(v)) rows.push([label, process, CLASS_NAMES[cls], num(v), '']);
      }
      rows.push([label, process, '**process total**', num(cell(runs, process, 'total')), '']);
    }
    const base = BASELINE[key];
    const baseRuns = base === undefined ? undefined : byKey.get(base);
    const total = cell(runs, '*', 'total');
    const ratio = baseRuns === undefined ? (base === undefined ? 'baseline' : '') : `${(total / cell(baseRuns, '*', 'total')).toFixed(2)}× ${baseRuns[0]!.label}`;
    rows.push([label, '**all processes**', '', `**${num(total)}**`, ratio]);
  }
  return table(['variant', 'process', 'thread', 'instructions / request', 'ratio of totals'], rows);
}

/** Each repeated variant's per-run totals and their spread, (max − min) / median. */
export function repeatTable(byKey: Map<string, InstrRun[]>): string | undefined {
  const rows: string[][] = [];
  for (const runs of byKey.values()) {
    if (runs.length < 2) continue;
    for (const process of [...processesOf(runs), '*']) {
      const xs = process === '*' ? runs.map(runTotal) : runs.map((r) => perRequest(r).get(process)?.get('total') ?? Number.NaN);
      const s = spread(xs);
      rows.push([runs[0]!.label, process === '*' ? 'all processes' : process, xs.map((x) => num(x)).join(', '), `${(((s.max - s.min) / s.median) * 100).toFixed(2)} %`]);
    }
  }
  return rows.length === 0 ? undefined : table(['variant', 'process', 'instructions / request, each run', 'spread (max − min) / median'], rows);
}
