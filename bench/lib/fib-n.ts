/**
 * The n of the CPU route `/svc/fib/:n`, decided once per run: `--fib N` when
 * given, else calibrated here to about 2 ms of CPU (bench/fib.ts is the same
 * function as the demo service's). The scenarios also report the CPU per
 * request they measured, which is what the figures rest on.
 */
import type { BenchConfig } from './config.js';
import { calibrateFib } from '../fib.js';

/** The CPU time the issue asks of one request on the CPU route. */
export const FIB_TARGET_MS = 2;

let chosen: { n: number; ms: number | undefined } | undefined;

/** n for /svc/fib/:n, and its calibrated time in ms (undefined when --fib was given). */
export function fibN(cfg: BenchConfig): { n: number; ms: number | undefined } {
  if (cfg.fibN !== undefined) return { n: cfg.fibN, ms: undefined };
  if (chosen === undefined) {
    const c = calibrateFib(FIB_TARGET_MS);
    chosen = { n: c.n, ms: c.ms };
    cfg.log(`fib: calibrated n = ${c.n} (${c.ms.toFixed(2)} ms in the bench process; target ${FIB_TARGET_MS} ms)`);
  }
  return chosen;
}
