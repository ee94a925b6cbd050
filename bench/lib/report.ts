/**
 * What a scenario hands back (text for the terminal, goals for the summary and
 * the chart, raw data for --json) and the formatting helpers they share.
 */
import type { Spread } from './stats.js';

export interface Goal {
  id: string;
  /** What is compared, e.g. 'service: m2gate service (1 worker) / minimal handler, req/s'. */
  label: string;
  /** The ratio of medians. */
  value: number;
  /** Lowest and highest per-round ratio (variants of the same round paired). */
  range: [number, number];
  op: '>=' | '<=';
  target: number;
}

export interface ScenarioResult {
  name: string;
  /** ok: every variant ran; partial: some variants or rounds failed or were skipped; skipped: nothing ran. */
  status: 'ok' | 'partial' | 'skipped';
  /** Missing programs or builds, in words that say how to get them. */
  missing: string[];
  /** The scenario's report, already formatted. */
  text: string;
  goals: Goal[];
  data: unknown;
}

export function goalMet(g: Goal): boolean | undefined {
  if (!Number.isFinite(g.value)) return undefined;
  return g.op === '>=' ? g.value >= g.target : g.value <= g.target;
}

/** 12345.6 → '12,346'; small numbers keep `digits` decimals. */
export function num(x: number, digits = 0): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** 'median (min–max)' */
export function spreadText(s: Spread, digits = 0): string {
  if (s.n === 0) return 'n/a';
  if (s.n === 1) return num(s.median, digits);
  return `${num(s.median, digits)} (${num(s.min, digits)}–${num(s.max, digits)})`;
}

/** Percent difference against a baseline: '+4.2%', '-61.0%', 'baseline'. */
export function vsBaseline(value: number, base: number, isBaseline: boolean): string {
  if (isBaseline) return 'baseline';
  if (!Number.isFinite(value) || !Number.isFinite(base) || base === 0) return 'n/a';
  const pct = (value / base - 1) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%`;
}

/**
 * A Markdown pipe table, padded so it also reads as plain text in a terminal:
 * first column left-aligned, the others right-aligned.
 */
export function table(headers: string[], rows: string[][]): string {
  const cell = (c: string): string => c.replace(/\|/g, '\\|');
  const widths = headers.map((h, i) => Math.max(3, cell(h).length, ...rows.map((r) => cell(r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? cell(c).padEnd(widths[i]!) : cell(c).padStart(widths[i]!))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  return [line(headers), rule, ...rows.map((r) => line(headers.map((_h, i) => r[i] ?? '')))].join('\n');
}

/** The goal line: 'ratio 0.31 (0.29–0.33), goal >= 0.95: MISSED'. */
export function goalText(g: Goal): string {
  const met = goalMet(g);
  const verdict = met === undefined ? 'n/a' : met ? 'met' : 'MISSED';
  const range = Number.isFinite(g.range[0]) && g.range[0] !== g.range[1] ? ` (${g.range[0].toFixed(2)}–${g.range[1].toFixed(2)})` : '';
  return `${g.label}: ${Number.isFinite(g.value) ? g.value.toFixed(2) : 'n/a'}${range}, goal ${g.op} ${g.target}: ${verdict}`;
}
