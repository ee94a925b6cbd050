/**
 * The Markdown report (bench/results/report.md): the environment, the goal
 * summary with verdicts, the chart, then every scenario's own text (its
 * tables are already Markdown pipe tables, see report.ts `table`).
 */
import { goalMet, type Goal, type ScenarioResult } from './report.js';

export interface MarkdownInput {
  title: string;
  /** The environment and method lines printed at the start of the run. */
  header: string[];
  results: ScenarioResult[];
  goals: Goal[];
  missing: string[];
  /** The chart's path relative to the report, when one was written. */
  chart: string | undefined;
}

const verdict = (g: Goal): string => {
  const met = goalMet(g);
  return met === undefined ? 'n/a' : met ? 'met' : '**missed**';
};

/** The whole report as Markdown text. */
export function markdownReport(input: MarkdownInput): string {
  const goalRows = input.goals.map((g) => {
    const range = Number.isFinite(g.range[0]) && g.range[0] !== g.range[1] ? ` (${g.range[0].toFixed(2)}–${g.range[1].toFixed(2)})` : '';
    return `| ${g.label.replace(/\|/g, '\\|')} | ${Number.isFinite(g.value) ? g.value.toFixed(2) : 'n/a'}${range} | ${g.op} ${g.target} | ${verdict(g)} |`;
  });
  const parts = [
    `# ${input.title}`,
    '',
    '```text',
    ...input.header,
    '```',
    '',
    '## Goals',
    '',
    '| goal | ratio of medians (per-round range) | target | verdict |',
    '| --- | ---: | --- | --- |',
    ...goalRows,
    '',
    ...(input.chart === undefined ? [] : [`![goal ratios](${input.chart})`, '']),
    ...(input.missing.length > 0 ? [`**Missing** (some variants did not run): ${input.missing.join('; ')}`, ''] : []),
    ...input.results.flatMap((r) => [`## ${r.name}${r.status === 'ok' ? '' : ` (${r.status})`}`, '', r.text, '']),
  ];
  return `${parts.join('\n')}\n`;
}
