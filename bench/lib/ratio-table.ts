/**
 * The side-by-side table of the `front` and `scaling` scenarios: throughput
 * and the servers' total CPU per 1,000 requests, each with its ratio to the
 * baseline, then latency, the CPU of each role, and the other load on the
 * server CPU (pinned runs only: on a shared machine it says which rows to doubt).
 */
import { figure, type Outcome } from './rounds.js';
import type { HttpSample } from './measure.js';
import { num, spreadText, table } from './report.js';
import { ratio } from './stats.js';

/** CPU seconds per 1,000 requests of every measured process together. */
export const totalCpu = (s: HttpSample): number => Object.values(s.cpuPer1k).reduce((a, b) => a + b, 0);

/** Median share of the server CPU taken by other work during the windows; 'n/a' when unpinned. */
function otherLoad(o: Outcome<HttpSample>): string {
  const f = figure(o, (s) => s.otherLoad);
  return f.n === 0 ? 'n/a' : `${(f.median * 100).toFixed(0)}%`;
}

const times = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : 'n/a');

/**
 * One row per variant in the given order (skipped and failed ones say so),
 * ratios against `baselineKey`. `roles` are the per-process CPU columns.
 */
export function ratioTable(outcomes: Array<Outcome<HttpSample>>, baselineKey: string, roles: string[]): string {
  const base = outcomes.find((o) => o.key === baselineKey);
  const baseRps = base ? figure(base, (s) => s.rps).median : Number.NaN;
  const baseCpu = base ? figure(base, totalCpu).median : Number.NaN;
  const rows = outcomes.map((o) => {
    if (!o.samples.some((s) => s !== undefined)) return [o.label, o.skipped ? 'SKIPPED' : 'FAILED', '', '', '', '', '', ...roles.map(() => ''), '', ''];
    const rps = figure(o, (s) => s.rps);
    const cpu = figure(o, totalCpu);
    return [
      o.label,
      spreadText(rps),
      o.key === baselineKey ? 'baseline' : times(ratio(rps.median, baseRps)),
      num(cpu.median, 3),
      o.key === baselineKey ? 'baseline' : times(ratio(cpu.median, baseCpu)),
      num(figure(o, (s) => s.p50Ms).median, 2),
      num(figure(o, (s) => s.p99Ms).median, 2),
      ...roles.map((r) => {
        const f = figure(o, (s) => s.cpuPer1k[r] ?? Number.NaN);
        return f.n === 0 ? '' : num(f.median, 3);
      }),
      otherLoad(o),
      num(o.samples.reduce((n, s) => n + (s?.errors ?? 0), 0)),
    ];
  });
  const text = table(['variant', 'req/s median (min–max)', 'req/s ratio', 'server CPU s/1k', 'CPU ratio', 'p50 ms', 'p99 ms', ...roles.map((r) => `${r} CPU s/1k`), 'other load', 'errors'], rows);
  const notes = outcomes.flatMap((o) => [...(o.skipped ? [`- ${o.label}: SKIPPED, missing ${o.skipped}`] : []), ...o.failures.map((f) => `- ${o.label}: FAILED ${f}`)]);
  return notes.length > 0 ? `${text}\n\n${notes.join('\n')}` : text;
}
