/**
 * Rounds of variants: every variant runs once per round in fresh processes,
 * the order reversed every other round, and a failure is recorded without
 * stopping the other variants.
 */
import { ratio, roundOrder, spread, type Spread } from './stats.js';
import type { BenchConfig } from './config.js';
import type { Goal } from './report.js';

export interface Variant<S> {
  key: string;
  label: string;
  /** What the variant needs and is missing (empty: runnable). */
  missing?: string[];
  run(round: number): Promise<S>;
}

export interface Outcome<S> {
  key: string;
  label: string;
  /** One entry per round; undefined where that round failed or was skipped. */
  samples: Array<S | undefined>;
  failures: string[];
  skipped?: string;
}

/**
 * Runs `rounds` rounds of `variants`.
 * `describe` turns a sample into the short progress text printed after each run.
 */
export async function runRounds<S>(cfg: BenchConfig, scenario: string, variants: Array<Variant<S>>, describe: (s: S) => string): Promise<Array<Outcome<S>>> {
  const outcomes = new Map<string, Outcome<S>>(variants.map((v) => [v.key, { key: v.key, label: v.label, samples: [], failures: [] }]));
  const runnable = variants.filter((v) => {
    if (!v.missing?.length) return true;
    outcomes.get(v.key)!.skipped = v.missing.join('; ');
    cfg.log(`[${scenario}] SKIPPED ${v.label}: missing ${v.missing.join('; ')}`);
    return false;
  });
  for (let round = 0; round < cfg.rounds; round++) {
    for (const v of roundOrder(runnable, round)) {
      const out = outcomes.get(v.key)!;
      const tag = `[${scenario} ${round + 1}/${cfg.rounds}] ${v.label}`;
      try {
        const sample = await v.run(round);
        out.samples[round] = sample;
        cfg.log(`${tag}: ${describe(sample)}`);
      } catch (err) {
        out.samples[round] = undefined;
        const message = (err as Error).message;
        out.failures.push(`round ${round + 1}: ${message}`);
        cfg.log(`${tag}: FAILED ${message}`);
      }
    }
  }
  return variants.map((v) => outcomes.get(v.key)!);
}

/** The spread of one figure over the rounds that succeeded. */
export function figure<S>(o: Outcome<S>, pick: (s: S) => number): Spread {
  return spread(o.samples.filter((s): s is S => s !== undefined).map(pick));
}

/**
 * A goal from two variants: the ratio of their medians, and the range of the
 * per-round ratios (only rounds where both succeeded are paired).
 */
export function ratioGoal<A, B>(
  base: Omit<Goal, 'value' | 'range'>,
  a: Outcome<A>,
  pickA: (s: A) => number,
  b: Outcome<B>,
  pickB: (s: B) => number,
): Goal {
  const value = ratio(figure(a, pickA).median, figure(b, pickB).median);
  const paired: number[] = [];
  a.samples.forEach((sa, i) => {
    const sb = b.samples[i];
    if (sa !== undefined && sb !== undefined) paired.push(ratio(pickA(sa), pickB(sb)));
  });
  const r = spread(paired);
  return { ...base, value, range: [r.min, r.max] };
}

/** True when no variant failed or was skipped. */
export function allRan<S>(outcomes: Array<Outcome<S>>): boolean {
  return outcomes.every((o) => o.skipped === undefined && o.failures.length === 0);
}
