// Runs the real Mongrel2 for a test: writes a config into a fresh directory,
// compiles it with m2sh and starts `mongrel2` in the foreground. Readiness is
// awaited through the pid file Mongrel2 writes after binding its HTTP port
// (mongrel2-protocol.md §12.2); requests that connect before it serves simply wait.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, watch, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Publisher, Pull } from 'zeromq';
import { freePort } from './net.js';

export interface HandlerSpec {
  route: string;
  sendSpec: string;
  sendIdent: string;
  recvSpec: string;
  recvIdent?: string;
  protocol?: 'json' | 'tnetstring';
}

export interface Mongrel2Options {
  handlers?: HandlerSpec[];
  /** Extra route lines, e.g. `'/static/': Dir(base='static/', ...)`. */
  extraRoutes?: string[];
  settings?: Record<string, string | number>;
  port?: number;
}

export interface Mongrel2 {
  port: number;
  dir: string;
  /** Stops the server (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts the same server again on the same port (a Mongrel2 restart). */
  restart(): Promise<void>;
  /** Removes its directory; call after stop(). */
  cleanup(): void;
  errorLog(): string;
}

/** Fails (never skips) when Mongrel2 is not installed: CI installs mongrel2-core. */
export function requireMongrel2(): void {
  for (const bin of ['mongrel2', 'm2sh']) {
    const found = spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
    if (!found) throw new Error(`${bin} not found: install Debian's mongrel2-core (apt-get install -y mongrel2-core)`);
  }
}

/** A unique ipc:// endpoint in a fresh temp directory. */
export function ipcEndpoint(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'm2gate-ipc-'));
  return `ipc://${join(dir, name)}`;
}

function confText(uuid: string, port: number, opts: Mongrel2Options): string {
  const handlers = (opts.handlers ?? []).map(
    (h, i) =>
      `h${i} = Handler(send_spec='${h.sendSpec}', send_ident='${h.sendIdent}', recv_spec='${h.recvSpec}', recv_ident='${h.recvIdent ?? ''}', protocol='${h.protocol ?? 'json'}')`,
  );
  const routes = [...(opts.handlers ?? []).map((h, i) => `'${h.route}': h${i}`), ...(opts.extraRoutes ?? [])];
  const settings = { 'server.daemonize': 0, ...opts.settings };
  return `${handlers.join('\n')}
main = Server(uuid="${uuid}", name="test", port=${port}, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid",
  default_host="localhost", hosts=[Host(name="localhost", routes={ ${routes.join(', ')} })])
settings = { ${Object.entries(settings)
    .map(([k, v]) => `"${k}": ${typeof v === 'number' ? String(v) : `"${String(v)}"`}`)
    .join(', ')} }
servers = [main]
`;
}

export async function startMongrel2(opts: Mongrel2Options = {}): Promise<Mongrel2> {
  requireMongrel2();
  const dir = mkdtempSync(join(tmpdir(), 'm2gate-mongrel2-'));
  for (const sub of ['logs', 'run', 'tmp', 'static']) mkdirSync(join(dir, sub));
  const port = opts.port ?? (await freePort());
  const uuid = 'f0e1d2c3-0000-4000-8000-00000000test';
  writeFileSync(join(dir, 'mongrel2.conf'), confText(uuid, port, opts));
  const load = spawnSync('m2sh', ['load', '-config', 'mongrel2.conf', '-db', 'config.sqlite'], { cwd: dir, encoding: 'utf8', env: { ...process.env, LOGNAME: process.env.LOGNAME ?? 'm2gate' } });
  // m2sh load exits 0 even on syntax errors (§11.5): read what it printed.
  if (load.status !== 0 || /error|syntax/i.test((load.stdout + load.stderr).replace(/getlogin failed[^\n]*/g, ''))) {
    throw new Error(`m2sh load failed:\n${load.stdout}${load.stderr}`);
  }

  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const pidFile = join(dir, 'run', 'mongrel2.pid');
    const watcher = watch(join(dir, 'run'));
    const written = new Promise<void>((resolve) => {
      watcher.on('change', () => {
        if (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '') resolve();
      });
    });
    child = spawn('mongrel2', ['config.sqlite', uuid], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit').then(([code]) => {
      throw new Error(`mongrel2 exited early (${String(code)}):\n${stderr}`);
    });
    try {
      await Promise.race([written, exited]);
    } finally {
      watcher.close();
    }
    exited.catch(() => {});
  };
  await start();

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exit = once(c, 'exit');
    c.kill('SIGTERM');
    await exit;
  };
  return {
    port,
    dir,
    stop,
    async restart() {
      await stop();
      await start();
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
    errorLog() {
      try {
        return readFileSync(join(dir, 'logs', 'error.log'), 'utf8');
      } catch {
        return '';
      }
    },
  };
}

/**
 * Connects a handler's sockets to a front's endpoints, as every Mongrel2
 * handler does (PULL to send_spec, PUB to recv_spec), and resolves once both
 * have completed their handshake, so no reply is published into the void.
 */
export async function connectHandler(sendSpec: string, recvSpec: string): Promise<{ pull: Pull; pub: Publisher; close: () => void }> {
  const pull = new Pull();
  const pub = new Publisher();
  const ready = [new Promise((resolve) => pull.events.on('handshake', resolve)), new Promise((resolve) => pub.events.on('handshake', resolve))];
  pull.connect(sendSpec);
  pub.connect(recvSpec);
  await Promise.all(ready);
  return {
    pull,
    pub,
    close: () => {
      pull.close();
      pub.close();
    },
  };
}

/**
 * A live Mongrel2 with one Handler at `route` and that handler's sockets connected (ipc
 * endpoints of their own); `stop()` closes the sockets and stops and removes Mongrel2.
 */
export async function startMongrel2Handler(
  handler: Omit<HandlerSpec, 'sendSpec' | 'recvSpec'>,
  opts: Omit<Mongrel2Options, 'handlers'> = {},
): Promise<{ m2: Mongrel2; pull: Pull; pub: Publisher; stop: () => Promise<void> }> {
  const sendSpec = ipcEndpoint('send');
  const recvSpec = ipcEndpoint('recv');
  const m2 = await startMongrel2({ ...opts, handlers: [{ ...handler, sendSpec, recvSpec }] });
  const { pull, pub, close } = await connectHandler(sendSpec, recvSpec);
  return {
    m2,
    pull,
    pub,
    stop: async () => {
      close();
      await m2.stop();
      m2.cleanup();
    },
  };
}
