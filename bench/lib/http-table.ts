/** The standard table for HTTP variants: throughput, latency, CPU per request, errors. */
import { figure, type Outcome } from './rounds.js';
import type { HttpSample } from './measure.js';
import { num, spreadText, table, vsBaseline } from './report.js';

/**
 * One row per variant that produced samples, sorted by median req/s (highest
 * first), with 'vs baseline' against `baselineKey`. `roles` are the CPU columns.
 */
export function httpTable(outcomes: Array<Outcome<HttpSample>>, baselineKey: string, roles: string[]): string {
  const base = outcomes.find((o) => o.key === baselineKey);
  const baseRps = base ? figure(base, (s) => s.rps).median : Number.NaN;
  const rows = outcomes
    .filter((o) => o.samples.some((s) => s !== undefined))
    .map((o) => ({ o, rps: figure(o, (s) => s.rps) }))
    .sort((a, b) => b.rps.median - a.rps.median)
    .map(({ o, rps }) => {
      const errors = o.samples.reduce((n, s) => n + (s?.errors ?? 0), 0);
      return [
        o.label,
        spreadText(rps),
        vsBaseline(rps.median, baseRps, o.key === baselineKey),
        spreadText(figure(o, (s) => s.p50Ms), 2),
        spreadText(figure(o, (s) => s.p99Ms), 2),
        ...roles.map((r) => {
          const f = figure(o, (s) => s.cpuPer1k[r] ?? Number.NaN);
          return f.n === 0 ? '' : num(f.median, 3);
        }),
        otherLoad(o),
        num(errors),
      ];
    });
  const text = table(['variant', 'req/s median (min–max)', 'vs baseline', 'p50 ms', 'p99 ms', ...roles.map((r) => `${r} CPU s/1k`), 'other load', 'errors'], rows);
  const notes = [
    "other load: share of the server CPU used by anything else (other processes, interrupts) during the windows; high values mean noisy figures.",
  ];
  notes.push(...outcomes.flatMap((o) => [
    ...(o.skipped ? [`- ${o.label}: SKIPPED, missing ${o.skipped}`] : []),
    ...o.failures.map((f) => `- ${o.label}: FAILED ${f}`),
  ]));
  return `${text}\n\n${notes.join('\n')}`;
}

/** Median share of the server CPU taken by other processes and interrupts during the windows. */
function otherLoad(o: Outcome<HttpSample>): string {
  const f = figure(o, (s) => s.otherLoad);
  return f.n === 0 ? 'n/a' : `${(f.median * 100).toFixed(0)}%`;
}

/** Per-thread CPU (main / ZeroMQ / other) of one role, medians, for the variants that record it. */
export function threadTable(outcomes: Array<Outcome<HttpSample>>, role: string): string {
  const rows = outcomes
    .filter((o) => o.samples.some((s) => s?.threadsPer1k[role] !== undefined))
    .map((o) => {
      const m = (k: 'main' | 'zmq' | 'other'): string => num(figure(o, (s) => s.threadsPer1k[role]?.[k] ?? Number.NaN).median, 3);
      return [o.label, m('main'), m('zmq'), m('other'), num(figure(o, (s) => s.cpuPer1k[role] ?? Number.NaN).median, 3)];
    });
  if (rows.length === 0) return '';
  return table([`${role} CPU s/1k req by thread`, 'main (event loop)', 'ZeroMQ I/O', 'other (workers, V8, libuv)', 'total'], rows);
}
