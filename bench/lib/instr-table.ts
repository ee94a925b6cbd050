/**
 * The tables of bench:instructions: instructions per request by variant,
 * process and thread class (medians over repeated runs), the ratios the
 * issue asks for, and how far repeated runs of a variant lie apart.
 */
import type { ThreadClass } from './callgrind.js';
import type { InstrRun } from './instr-variants.js';
import { num, table } from './report.js';
import { spread } from './stats.js';

/** A thread class, V8's background compiling (taken out of the class it ran in), or a process's sums. */
type Part = ThreadClass | 'compile' | 'total' | 'steady';
const PARTS: Array<ThreadClass | 'compile'> = ['main', 'worker', 'zmq', 'other', 'compile'];
const PART_NAMES: Record<ThreadClass | 'compile', string> = {
  main: 'main (event loop)',
  worker: 'worker thread',
  zmq: 'libzmq I/O',
  other: 'other (GC, libuv, …)',
  compile: 'V8 background compile',
};

/**
 * Instructions per request of one run: process label → part → count.
 * `total` is everything the window executed; `steady` leaves out V8's
 * background compiling, which a longer warm-up would have done before.
 */
export function perRequest(run: InstrRun): Map<string, Map<Part, number>> {
  const out = new Map<string, Map<Part, number>>();
  for (const p of run.processes) {
    const m = new Map<Part, number>();
    const add = (part: Part, n: number): void => void m.set(part, (m.get(part) ?? 0) + n / run.requests);
    for (const t of p.threads) {
      add(t.cls, t.instructions - t.compile);
      add('compile', t.compile);
      add('total', t.instructions);
      add('steady', t.instructions - t.compile);
    }
    out.set(p.label, m);
  }
  return out;
}

/** All processes of a run together, per request, without V8's background compiling. */
export const runTotal = (run: InstrRun): number => run.processes.reduce((s, p) => s + p.threads.reduce((a, t) => a + t.instructions - t.compile, 0), 0) / run.requests;

const median = (xs: number[]): number => (xs.length === 0 ? Number.NaN : spread(xs).median);

/** The median over `runs` of one cell (a part of a process, or '*' for the variant's steady total). */
export function cell(runs: InstrRun[], process: string, what: Part): number {
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
    return runs === undefined ? Number.NaN : cell(runs, process, 'steady');
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
      for (const part of PARTS) {
        const v = cell(runs, process, part);
        // A class no thread of the process has is left out; a compile of 0 is worth seeing.
        if (Number.isFinite(v) && (v > 0 || part === 'compile')) rows.push([label, process, PART_NAMES[part], num(v), '']);
      }
      rows.push([label, process, 'process total', num(cell(runs, process, 'total')), '']);
      rows.push([label, process, '**process total without background compile**', num(cell(runs, process, 'steady')), '']);
    }
    const base = BASELINE[key];
    const baseRuns = base === undefined ? undefined : byKey.get(base);
    const total = cell(runs, '*', 'steady');
    const ratio = baseRuns === undefined ? (base === undefined ? 'baseline' : '') : `${(total / cell(baseRuns, '*', 'steady')).toFixed(2)}× ${baseRuns[0]!.label}`;
    rows.push([label, '**all processes**', 'without background compile', `**${num(total)}**`, ratio]);
  }
  return table(['variant', 'process', 'thread', 'instructions / request', 'ratio of totals'], rows);
}

/** Each repeated variant's per-run totals and their spread, (max − min) / median, without and with V8's background compiling. */
export function repeatTable(byKey: Map<string, InstrRun[]>): string | undefined {
  const rows: string[][] = [];
  const spreadPct = (xs: number[]): string => {
    const s = spread(xs);
    return `${(((s.max - s.min) / s.median) * 100).toFixed(2)} %`;
  };
  for (const runs of byKey.values()) {
    if (runs.length < 2) continue;
    for (const process of [...processesOf(runs), '*']) {
      const of = (part: Part): number[] =>
        runs.map((r) => {
          const m = perRequest(r);
          const procs = process === '*' ? [...m.values()] : [m.get(process)].filter((x) => x !== undefined);
          return procs.reduce((s, p) => s + (p.get(part) ?? 0), 0);
        });
      const steady = of('steady');
      const total = of('total');
      rows.push([runs[0]!.label, process === '*' ? 'all processes' : process, steady.map((x) => num(x)).join(', '), spreadPct(steady), total.map((x) => num(x)).join(', '), spreadPct(total)]);
    }
  }
  return rows.length === 0
    ? undefined
    : table(['variant', 'process', 'without background compile, each run', 'spread (max − min) / median', 'with it, each run', 'spread'], rows);
}

/**
 * What the processes execute per second with no load, and what that rate
 * over the measured window's length comes to per request: the share of the
 * figure that is timers (heartbeats, metrics, keep-alive checks) rather than
 * requests. Under callgrind the window is tens of times longer than it would
 * be natively, so this share is too.
 */
export function idleTable(byKey: Map<string, InstrRun[]>): string | undefined {
  const rows: string[][] = [];
  for (const runs of byKey.values()) {
    for (const process of processesOf(runs)) {
      const idle = median(runs.map((r) => r.processes.find((p) => p.label === process)?.idlePerSecond ?? Number.NaN).filter(Number.isFinite));
      if (!Number.isFinite(idle)) continue;
      const seconds = median(runs.map((r) => r.seconds));
      const share = (idle * seconds) / runs[0]!.requests;
      rows.push([runs[0]!.label, process, num(idle), seconds.toFixed(1), num(share), `${((share / cell(runs, process, 'steady')) * 100).toFixed(2)} %`]);
    }
  }
  return rows.length === 0
    ? undefined
    : table(['variant', 'process', 'idle instructions / s', 'measured window s', 'idle rate × window / request', 'of the figure'], rows);
}
