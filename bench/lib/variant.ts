/**
 * The life of one variant run: a fresh conf directory and fresh processes,
 * a readiness check through the front, the measurement, then every process
 * stopped by pid (fronts first) and the directory removed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchConfig } from './config.js';
import { writeBenchConf, type BenchConf, type BenchConfOptions } from './front.js';
import { hasProgram, stopAll, type Spawned } from './proc.js';
import { measureHttp, type HttpSample, type Role } from './measure.js';
import { waitHttp200 } from './ready.js';

/**
 * Starts what `start` starts (in order; it receives the list so far, so a
 * failure part-way still stops what did start), waits until `readyPath`
 * answers 200 on the conf's port, runs `body`, and always cleans up. The
 * directory (conf and process logs) is kept when the run fails, with
 * --keep-logs, or when `keep` says the result is worth a look (errors seen).
 */
export async function withProcesses<T>(
  cfg: BenchConfig,
  start: (conf: BenchConf, started: Spawned[]) => Promise<Role[]>,
  readyPath: string,
  body: (base: string, roles: Role[], conf: BenchConf) => Promise<T>,
  keep: (result: T) => boolean = () => false,
  confOptions: BenchConfOptions = {},
): Promise<T> {
  const conf = await writeBenchConf(confOptions);
  const started: Spawned[] = [];
  let ok = false;
  try {
    const roles = await start(conf, started);
    const base = `http://127.0.0.1:${conf.httpPort}`;
    await waitHttp200(`${base}${readyPath}`, started);
    const result = await body(base, roles, conf);
    ok = !keep(result);
    return result;
  } finally {
    await stopAll(started);
    if (ok && !cfg.keepLogs) conf.cleanup();
    else cfg.log(`  (logs kept in ${join(conf.dir, 'logs')})`);
  }
}

/** Overrides of one HTTP variant's load (defaults: the run's settings). */
export interface HttpVariantOptions {
  connections?: number;
  /** Pin wrk to these CPUs; null: unpinned whatever the run's pinning. */
  loadCpus?: string | null;
  /** The CPUs the servers are pinned to (for the 'other load' column); null: not pinned. */
  serverCpus?: string | null;
  conf?: BenchConfOptions;
}

/** withProcesses + one measured wrk window on `path`. */
export function httpVariant(
  cfg: BenchConfig,
  start: (conf: BenchConf, started: Spawned[]) => Promise<Role[]>,
  path: string,
  options: HttpVariantOptions = {},
): Promise<HttpSample> {
  const loadCpus = options.loadCpus === null ? undefined : (options.loadCpus ?? cfg.loadCpus);
  const serverCpus = options.serverCpus === null ? undefined : (options.serverCpus ?? cfg.serverCpus);
  return withProcesses(
    cfg,
    start,
    path,
    (base, roles) => measureHttp(`${base}${path}`, roles, { warmupS: cfg.warmupS, durationS: cfg.durationS, connections: options.connections ?? cfg.connections, cpus: loadCpus, serverCpus }),
    (sample) => sample.errors > 0,
    options.conf,
  );
}

/** Programs a variant needs, each with how to install it. */
export const PROGRAMS = {
  wrk: 'wrk (apt-get install -y wrk)',
  mongrel2: 'mongrel2 and m2sh (apt-get install -y mongrel2-core)',
} as const;

/** What of `needs` is missing here, in words that say how to get it. */
export function missing(cfg: BenchConfig, needs: Array<'wrk' | 'mongrel2' | 'm2gate'>): string[] {
  const out: string[] = [];
  for (const need of needs) {
    if (need === 'wrk' && !hasProgram('wrk')) out.push(PROGRAMS.wrk);
    if (need === 'mongrel2' && !(hasProgram('mongrel2') && hasProgram('m2sh'))) out.push(PROGRAMS.mongrel2);
    if (need === 'm2gate' && !existsSync(cfg.m2gateBin)) out.push(`the m2gate build ${cfg.m2gateBin} (npm run build)`);
  }
  return out;
}

/** Short progress text for an HTTP sample. */
export function describeHttp(s: HttpSample): string {
  const cpu = Object.entries(s.cpuPer1k)
    .map(([role, v]) => `${role} ${v.toFixed(3)}`)
    .join(', ');
  const other = Number.isFinite(s.otherLoad) ? `, other load on server CPU ${(s.otherLoad * 100).toFixed(0)}%` : '';
  return `${Math.round(s.rps).toLocaleString('en-US')} req/s, p50 ${s.p50Ms.toFixed(2)} ms, p99 ${s.p99Ms.toFixed(2)} ms, CPU s/1k req: ${cpu}${other}${s.errors > 0 ? `, ERRORS ${s.errors}` : ''}`;
}
