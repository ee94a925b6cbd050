/** The environment a run happened in, printed first and kept in the JSON. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { version as libzmqVersion } from 'zeromq';
import { ROOT } from './config.js';
import { CLOCK_TICKS, hasProgram } from './proc.js';

export interface Environment {
  node: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  m2gate: string;
  mongrel2: string;
  zeromq: string;
  piscina: string;
  mitata: string;
  fastify: string;
  wrk: string;
  clockTicks: number;
}

function pkgVersion(dir: string): string {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'not installed';
  }
}

function run(cmd: string, args: string[]): string | undefined {
  const out = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8' });
  return out.status === 0 ? out.stdout.trim() : undefined;
}

/** Versions and hardware; never throws (a missing program is reported as such). */
export function environment(): Environment {
  const commit = run('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = (run('git', ['status', '--porcelain', '--untracked-files=no']) ?? '') !== '';
  const m2 = hasProgram('mongrel2') ? (run('dpkg-query', ['-W', '-f=${Version}', 'mongrel2-core']) ?? 'installed, version unknown') : 'NOT INSTALLED (apt-get install -y mongrel2-core)';
  const wrk = hasProgram('wrk') ? (spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0]?.trim() ?? 'installed') : 'NOT INSTALLED (apt-get install -y wrk)';
  return {
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    m2gate: `${pkgVersion(ROOT)}${commit ? ` (git ${commit}${dirty ? ' + uncommitted changes' : ''})` : ''}`,
    mongrel2: m2.startsWith('NOT') ? m2 : `Mongrel2 ${m2}`,
    zeromq: `zeromq.js ${pkgVersion(join(ROOT, 'node_modules', 'zeromq'))}, libzmq ${libzmqVersion}`,
    piscina: pkgVersion(join(ROOT, 'node_modules', 'piscina')),
    mitata: pkgVersion(join(ROOT, 'node_modules', 'mitata')),
    fastify: pkgVersion(join(ROOT, 'bench', 'node_modules', 'fastify')),
    wrk,
    clockTicks: CLOCK_TICKS,
  };
}

export function formatEnvironment(env: Environment): string {
  return [
    `node      ${env.node}`,
    `cpu       ${env.cpu}, ${env.cores} cores, ${env.memoryGiB} GiB, Linux ${env.kernel}`,
    `m2gate    ${env.m2gate}`,
    `mongrel2  ${env.mongrel2}`,
    `zeromq    ${env.zeromq}`,
    `piscina   ${env.piscina}`,
    `mitata    ${env.mitata}`,
    `fastify   ${env.fastify}${env.fastify === 'not installed' ? ' (cd bench && npm install)' : ''}`,
    `wrk       ${env.wrk}`,
  ].join('\n');
}
