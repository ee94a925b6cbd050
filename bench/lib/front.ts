/**
 * One mongrel2.conf per benchmark run, read by both fronts: the real Mongrel2
 * (after `m2sh load`) and `m2gate gateway --config` (DESIGN.md: the same file
 * drives both). It has a Handler under /svc/ on loopback tcp:// endpoints and a
 * Dir under /static/ holding the small static file.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnPinned, type Spawned } from './proc.js';
import { waitFile } from './ready.js';
import { freePort } from '../../test/helpers/net.js';

export const SERVER_UUID = 'b3c1a2d4-0000-4000-8000-0000000bench';
export const HANDLER_IDENT = '0bench00-0000-4000-8000-000000handler';
/** The static file: 1,024 bytes of text, served as /static/small.txt. */
export const STATIC_NAME = 'small.txt';
export const STATIC_BYTES = Buffer.from('m2gate static benchmark file. '.repeat(40).slice(0, 1023) + '\n');

/** The same helper the tests use to find a free loopback port. */
export { freePort };

export interface BenchConf {
  dir: string;
  confFile: string;
  httpPort: number;
  /** The Handler's send_spec (handlers connect PULL here) and recv_spec (PUB here). */
  sendSpec: string;
  recvSpec: string;
  staticFile: string;
  cleanup(): void;
}

export interface BenchConfOptions {
  /**
   * Mark the Handler `transport='link'` (the m2gate link: the gateway binds a
   * ROUTER on send_spec, services connect a DEALER with `--connect`). m2sh
   * ignores the field, so only the gateway reads it. Default false: PUSH/SUB.
   */
  link?: boolean;
}

/** Writes a fresh directory with mongrel2.conf, logs/, run/, tmp/ and static/small.txt. Fresh ports each time. */
export async function writeBenchConf(options: BenchConfOptions = {}): Promise<BenchConf> {
  const dir = mkdtempSync(join(tmpdir(), 'm2gate-bench-'));
  for (const sub of ['logs', 'run', 'tmp', 'static']) mkdirSync(join(dir, sub));
  const staticFile = join(dir, 'static', STATIC_NAME);
  writeFileSync(staticFile, STATIC_BYTES);
  const [httpPort, sendPort, recvPort] = [await freePort(), await freePort(), await freePort()];
  const sendSpec = `tcp://127.0.0.1:${sendPort}`;
  const recvSpec = `tcp://127.0.0.1:${recvPort}`;
  // JSON headers: Mongrel2's default protocol and that of the shipped mongrel2.conf.
  const transport = options.link === true ? ", transport='link'" : '';
  const text = `svc = Handler(send_spec='${sendSpec}', send_ident='${HANDLER_IDENT}', recv_spec='${recvSpec}', recv_ident=''${transport})
static_dir = Dir(base='static/', index_file='index.html', default_ctype='text/plain')
main = Server(uuid="${SERVER_UUID}", name="bench", bind_addr="127.0.0.1", port=${httpPort},
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid",
  default_host="localhost",
  hosts=[Host(name="localhost", routes={ '/svc/': svc, '/static/': static_dir })])
settings = { "server.daemonize": 0, "limits.content_length": 1048576 }
servers = [main]
`;
  const confFile = join(dir, 'mongrel2.conf');
  writeFileSync(confFile, text);
  return { dir, confFile, httpPort, sendSpec, recvSpec, staticFile, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Compiles the conf with m2sh and starts `mongrel2 config.sqlite UUID` in the
 * foreground, pinned to `cpus`. Resolves once the pid file exists (§12.2: it is
 * written after the HTTP port is bound; requests that come early just wait).
 *
 * @throws Error when m2sh reports an error or Mongrel2 exits or writes no pid file in time.
 */
export async function startMongrel2(conf: BenchConf, cpus: string | undefined, options: { wrap?: string[]; deadlineMs?: number } = {}): Promise<Spawned> {
  const load = spawnSync('m2sh', ['load', '-config', 'mongrel2.conf', '-db', 'config.sqlite'], {
    cwd: conf.dir,
    encoding: 'utf8',
    env: { ...process.env, LOGNAME: process.env.LOGNAME ?? 'm2gate' },
  });
  // m2sh load exits 0 even on syntax errors (§11.5): read what it printed.
  if (load.status !== 0 || /error|syntax/i.test((load.stdout + load.stderr).replace(/getlogin failed[^\n]*/g, ''))) {
    throw new Error(`m2sh load failed:\n${load.stdout}${load.stderr}`);
  }
  const proc = spawnPinned('mongrel2', 'mongrel2', ['config.sqlite', SERVER_UUID], { cpus, cwd: conf.dir, logFile: join(conf.dir, 'logs', 'stdout.log'), wrap: options.wrap });
  await waitFile(join(conf.dir, 'run', 'mongrel2.pid'), proc, options.deadlineMs);
  return proc;
}
