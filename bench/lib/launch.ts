/**
 * Starting the processes the scenarios compare, each pinned to the server
 * CPUs, each writing its output into the variant's temp directory.
 * Bench-owned programs (.ts) run under tsx, which only affects loading.
 */
import { dirname, join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { BENCH_DIR, ROOT, type BenchConfig } from './config.js';
import { spawnPinned, type Spawned } from './proc.js';
import type { BenchConf } from './front.js';

const TSX = ['--import', 'tsx'];

function profileFlags(cfg: BenchConfig, tag: string | undefined): string[] {
  if (!cfg.profile || tag === undefined) return [];
  const dir = join(cfg.resultsDir, 'profiles', tag);
  mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', '--cpu-prof-dir', dir];
}

/** Where and how one process of a variant runs, when it differs from the run's defaults. */
export interface PlaceOptions {
  /** taskset CPU list; null: unpinned whatever the run's pinning. Default: the run's server CPUs. */
  cpus?: string | null;
  /** Log file name under the conf's logs/ (two services in one variant need two). */
  logName?: string;
}

const placeCpus = (cfg: BenchConfig, place: PlaceOptions): string | undefined => (place.cpus === null ? undefined : (place.cpus ?? cfg.serverCpus));

/** Options of `startService` beyond the worker count. */
export interface ServiceOptions extends PlaceOptions {
  /** Connect over the m2gate link (`--connect send_spec`) instead of PULL/PUB (`--send`/`--recv`). Default false. */
  link?: boolean;
}

/**
 * `m2gate service` (the demo routes) attached to the conf's Handler, with
 * `extra` flags. With --profile, `profileTag` names its profile folder
 * (undefined: not profiled).
 */
export function startService(cfg: BenchConfig, conf: BenchConf, workers: number, profileTag?: string, extra: string[] = [], options: ServiceOptions = {}): Spawned {
  const endpoints = options.link === true ? ['--connect', conf.sendSpec] : ['--send', conf.sendSpec, '--recv', conf.recvSpec];
  const args = [...profileFlags(cfg, profileTag), cfg.m2gateBin, 'service', ...endpoints, '--workers', String(workers), ...extra];
  return spawnPinned(`m2gate service --workers ${workers}${options.link === true ? ' (link)' : ''}`, process.execPath, args, {
    cpus: placeCpus(cfg, options),
    cwd: ROOT,
    wrap: cfg.wrap,
    logFile: join(conf.dir, 'logs', options.logName ?? 'service.log'),
  });
}

/** The built demo app (`GET /app/hello`, answered in the gateway). */
export const demoApp = (cfg: BenchConfig): string => join(dirname(dirname(cfg.m2gateBin)), 'gateway', 'demo-app.js');

/** bench/minimal-handler.ts attached to the conf's Handler. */
export function startMinimalHandler(cfg: BenchConfig, conf: BenchConf): Spawned {
  const args = [...TSX, join(BENCH_DIR, 'minimal-handler.ts'), '--send', conf.sendSpec, '--recv', conf.recvSpec];
  return spawnPinned('minimal handler', process.execPath, args, { cpus: cfg.serverCpus, cwd: ROOT, wrap: cfg.wrap, logFile: join(conf.dir, 'logs', 'minimal.log') });
}

/**
 * `m2gate gateway --config <the conf> --port <its port>`, optionally with an
 * app module (a .ts app needs tsx in the gateway process).
 */
export function startGateway(cfg: BenchConfig, conf: BenchConf, profileTag: string | undefined, app?: string, place: PlaceOptions & { nodeFlags?: string[] } = {}): Spawned {
  const args = [
    ...(place.nodeFlags ?? []),
    ...(app?.endsWith('.ts') ? TSX : []),
    ...profileFlags(cfg, profileTag),
    cfg.m2gateBin,
    'gateway',
    '--config',
    conf.confFile,
    '--port',
    String(conf.httpPort),
    ...(app === undefined ? [] : ['--app', app]),
  ];
  return spawnPinned('m2gate gateway', process.execPath, args, { cpus: placeCpus(cfg, place), cwd: ROOT, wrap: cfg.wrap, logFile: join(conf.dir, 'logs', place.logName ?? 'gateway.log') });
}

/** bench/static-server.ts: bare node:http serving the conf's static file (`memory` or `readfile`). */
export function startStaticServer(cfg: BenchConfig, conf: BenchConf, mode: 'memory' | 'readfile'): Spawned {
  const args = [...TSX, join(BENCH_DIR, 'static-server.ts'), '--port', String(conf.httpPort), '--file', conf.staticFile, '--mode', mode];
  return spawnPinned(`node:http static (${mode})`, process.execPath, args, { cpus: cfg.serverCpus, cwd: ROOT, wrap: cfg.wrap, logFile: join(conf.dir, 'logs', 'static.log') });
}

/** bench/hello-server.ts: bare node:http or Fastify answering GET /hello with 'hello'. */
export function startHelloServer(cfg: BenchConfig, conf: BenchConf, kind: 'node' | 'fastify'): Spawned {
  const args = [...TSX, join(BENCH_DIR, 'hello-server.ts'), '--port', String(conf.httpPort), '--kind', kind];
  return spawnPinned(`${kind} hello server`, process.execPath, args, { cpus: cfg.serverCpus, cwd: ROOT, wrap: cfg.wrap, logFile: join(conf.dir, 'logs', `hello-${kind}.log`) });
}

/**
 * bench/cpu-server.ts: node:http serving /svc/fib/:n and /app/hello, the fib
 * either in a piscina pool of `threads` threads in the same process or inline
 * on the event loop.
 */
export function startCpuServer(cfg: BenchConfig, conf: BenchConf, mode: 'piscina' | 'inline', threads: number, place: PlaceOptions = {}): Spawned {
  const args = [...TSX, join(BENCH_DIR, 'cpu-server.ts'), '--port', String(conf.httpPort), '--mode', mode, '--threads', String(threads)];
  return spawnPinned(`node:http fib ${mode}${mode === 'piscina' ? ` (${threads} threads)` : ''}`, process.execPath, args, {
    cpus: placeCpus(cfg, place),
    cwd: ROOT,
    wrap: cfg.wrap,
    logFile: join(conf.dir, 'logs', place.logName ?? `cpu-${mode}.log`),
  });
}

/** A CPU hog: one thread spinning until stopped, to slow whatever shares its CPU. */
export function startHog(cfg: BenchConfig, conf: BenchConf, cpus: string | undefined): Spawned {
  const args = ['-e', 'for (;;) {}'];
  return spawnPinned('CPU hog', process.execPath, args, { cpus, cwd: ROOT, logFile: join(conf.dir, 'logs', 'hog.log') });
}
