/**
 * Starting the processes the scenarios compare, each pinned to the server
 * CPUs, each writing its output into the variant's temp directory.
 * Bench-owned programs (.ts) run under tsx, which only affects loading.
 */
import { join } from 'node:path';
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

/**
 * `m2gate service` (the demo routes) attached to the conf's Handler, with
 * `extra` flags. With --profile, `profileTag` names its profile folder
 * (undefined: not profiled).
 */
export function startService(cfg: BenchConfig, conf: BenchConf, workers: number, profileTag?: string, extra: string[] = []): Spawned {
  const args = [...profileFlags(cfg, profileTag), cfg.m2gateBin, 'service', '--send', conf.sendSpec, '--recv', conf.recvSpec, '--workers', String(workers), ...extra];
  return spawnPinned(`m2gate service --workers ${workers}`, process.execPath, args, { cpus: cfg.serverCpus, cwd: ROOT, logFile: join(conf.dir, 'logs', 'service.log') });
}

/** bench/minimal-handler.ts attached to the conf's Handler. */
export function startMinimalHandler(cfg: BenchConfig, conf: BenchConf): Spawned {
  const args = [...TSX, join(BENCH_DIR, 'minimal-handler.ts'), '--send', conf.sendSpec, '--recv', conf.recvSpec];
  return spawnPinned('minimal handler', process.execPath, args, { cpus: cfg.serverCpus, cwd: ROOT, logFile: join(conf.dir, 'logs', 'minimal.log') });
}

/**
 * `m2gate gateway --config <the conf> --port <its port>`, optionally with an
 * app module (a .ts app needs tsx in the gateway process).
 */
export function startGateway(cfg: BenchConfig, conf: BenchConf, profileTag: string | undefined, app?: string): Spawned {
  const args = [
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
  return spawnPinned('m2gate gateway', process.execPath, args, { cpus: cfg.serverCpus, cwd: ROOT, logFile: join(conf.dir, 'logs', 'gateway.log') });
}

/** bench/static-server.ts: bare node:http serving the conf's static file (`memory` or `readfile`). */
export function startStaticServer(cfg: BenchConfig, conf: BenchConf, mode: 'memory' | 'readfile'): Spawned {
  const args = [...TSX, join(BENCH_DIR, 'static-server.ts'), '--port', String(conf.httpPort), '--file', conf.staticFile, '--mode', mode];
  return spawnPinned(`node:http static (${mode})`, process.execPath, args, { cpus: cfg.serverCpus, cwd: ROOT, logFile: join(conf.dir, 'logs', 'static.log') });
}
