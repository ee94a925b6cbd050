/**
 * Keeps one local `m2gate service` child process running: restarts it with
 * exponential backoff (100 ms doubling to 10 s, reset after 10 s of uptime)
 * when it dies, and stops it with SIGTERM (its own drain) on stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { extname } from 'node:path';
import type { Logger } from 'pino';

// Under tsx (tests, development) this file is .ts and the child needs the same loader flags.
const CLI = fileURLToPath(new URL(`./m2gate${extname(fileURLToPath(import.meta.url))}`, import.meta.url));
const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 10_000;
const STABLE_MS = 10_000;

export class ServiceSupervisor {
  readonly #args: string[];
  readonly #log: Logger;
  readonly #env: NodeJS.ProcessEnv;
  #child: ChildProcess | undefined;
  #backoff = MIN_BACKOFF_MS;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  restarts = 0;

  /** `env` is added to this process's environment for the service. */
  constructor(args: string[], log: Logger, env: NodeJS.ProcessEnv = {}) {
    this.#args = args;
    this.#log = log;
    this.#env = env;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    const startedAt = Date.now();
    // The IPC channel tells the child when this process dies; see signals.ts for SIGINT.
    const child = spawn(process.execPath, [...process.execArgv, CLI, 'service', ...this.#args], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...this.#env, M2GATE_SUPERVISED: '1' },
    });
    child.channel?.unref();
    this.#child = child;
    child.once('exit', (code, signal) => {
      this.#child = undefined;
      if (this.#stopping) return;
      if (Date.now() - startedAt >= STABLE_MS) this.#backoff = MIN_BACKOFF_MS;
      const delay = this.#backoff;
      this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF_MS);
      this.restarts++;
      this.#log.warn({ code, signal, restartInMs: delay }, 'service process died; restarting');
      this.#restartTimer = setTimeout(() => this.start(), delay);
    });
  }

  /** SIGTERM the child and wait for it to exit (it drains its own requests first). */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await exited;
  }
}
