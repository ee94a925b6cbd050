/**
 * The load generator: Debian's wrk (a C program, far cheaper per request than
 * a Node client, which matters on 2 cores), run with `--latency` so that its
 * report has p50/p99, and parsed here.
 */
import { spawn } from 'node:child_process';

export interface WrkOptions {
  url: string;
  /** Whole seconds (wrk's -d takes no fractions). */
  durationS: number;
  /** Open connections (wrk's -c). Defaults to 50. */
  connections?: number;
  /** wrk threads (-t). Defaults to 1: wrk gets one core. */
  threads?: number;
  /** taskset CPU list for wrk, or undefined for unpinned. */
  cpus?: string | undefined;
  /** A wrk Lua script (-s), e.g. one with a `delay()` hook for a light, paced load. */
  script?: string;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  /** Latency percentiles in milliseconds. */
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function durationMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`wrk: cannot read the duration '${text}'`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/**
 * Parses the text wrk prints with `--latency`.
 *
 * @throws Error when a figure the suite relies on is missing.
 */
export function parseWrk(out: string): WrkResult {
  const pick = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(out);
    if (!m) throw new Error(`wrk output has no ${what}:\n${out}`);
    return m;
  };
  const total = pick(/(\d+) requests in ([\d.]+)(us|ms|s|m|h),/, 'request count');
  const pct = (p: string): number => durationMs(pick(new RegExp(`^\\s+${p}%\\s+([\\d.]+\\w+)\\s*$`, 'm'), `${p}% latency`)[1]!);
  const latency = pick(/^\s+Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)/m, 'latency line');
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const requests = Number(total[1]);
  const seconds = durationMs(`${total[2]}${total[3]}`) / 1000;
  return {
    requests,
    seconds,
    rps: Number(pick(/Requests\/sec:\s+([\d.]+)/, 'Requests/sec')[1]),
    p50Ms: pct('50'),
    p75Ms: pct('75'),
    p90Ms: pct('90'),
    p99Ms: pct('99'),
    maxMs: durationMs(latency[3]!),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: {
      connect: Number(errors?.[1] ?? 0),
      read: Number(errors?.[2] ?? 0),
      write: Number(errors?.[3] ?? 0),
      timeout: Number(errors?.[4] ?? 0),
    },
  };
}

/**
 * Runs wrk once and parses its report. Killed if it overruns its duration by 20 s.
 *
 * @throws Error when wrk fails, prints no usable report, or `durationS` is not a whole number.
 */
export function runWrk(opts: WrkOptions): Promise<WrkResult> {
  if (!(Number.isInteger(opts.durationS) && opts.durationS >= 1)) return Promise.reject(new Error(`wrk needs whole seconds (got ${opts.durationS})`));
  const args = ['-t', String(opts.threads ?? 1), '-c', String(opts.connections ?? 50), '-d', `${opts.durationS}s`, ...(opts.script === undefined ? [] : ['-s', opts.script]), '--latency', opts.url];
  const argv = opts.cpus === undefined ? ['wrk', ...args] : ['taskset', '-c', opts.cpus, 'wrk', ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), (opts.durationS + 20) * 1000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`wrk exited with ${String(code ?? signal)}: ${err}${out}`));
      try {
        resolve(parseWrk(out));
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

/** Total socket errors of a run. */
export function socketErrorCount(r: WrkResult): number {
  const e = r.socketErrors;
  return e.connect + e.read + e.write + e.timeout;
}

/**
 * A wrk Lua script that waits `ms` milliseconds before each request on a
 * connection (wrk's `delay()` hook), so `connections` connections send about
 * `connections * 1000 / ms` requests per second at most: a light probe load.
 */
export function pacedScript(ms: number): string {
  return `function delay()\n  return ${Math.max(0, Math.round(ms))}\nend\n`;
}
