/**
 * The CPU route's work, the same naive Fibonacci as the demo service's
 * `GET /svc/fib/:n` (workers/demo-routes.ts), for the baselines that run it
 * outside m2gate: the piscina pool (this file is its worker module: the
 * default export is the task) and the inline node:http server, and for
 * calibrating n to a target CPU time.
 */
import { performance } from 'node:perf_hooks';

export function fib(n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

/** The piscina task: the same JSON fields the demo route computes (minus thread and timestamps). */
export default function fibTask(task: { n: number }): { n: number; fib: number } {
  return { n: task.n, fib: fib(task.n) };
}

export interface Calibration {
  n: number;
  /** Shortest wall time of fib(n) over the timed runs in this process, ms. */
  ms: number;
}

/**
 * The n whose fib(n) takes closest to `targetMs` (on a log scale) here:
 * the shortest of 9 timed runs after a warm-up (on a shared machine the
 * shortest is the run least slowed by other processes), n from 15 up to 40.
 */
export function calibrateFib(targetMs: number): Calibration {
  const time = (n: number): number => {
    for (let i = 0; i < 3; i++) fib(n);
    const runs: number[] = [];
    for (let i = 0; i < 9; i++) {
      const t0 = performance.now();
      fib(n);
      runs.push(performance.now() - t0);
    }
    return Math.min(...runs);
  };
  let prev: Calibration = { n: 15, ms: time(15) };
  for (let n = 16; n <= 40; n++) {
    const cur = { n, ms: time(n) };
    if (cur.ms >= targetMs) return Math.log(cur.ms / targetMs) < Math.log(targetMs / prev.ms) ? cur : prev;
    prev = cur;
  }
  return prev;
}
