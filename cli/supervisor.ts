/**
 * Keeps one local `m2gate service` child process running: restarts it with
 * exponential backoff (100 ms doubling to 10 s, reset after 10 s of uptime)
 * when it dies, and stops it with SIGTERM (its own drain) on stop().
 *
 * A child that dies before it ever started (its routes module is missing or
 * broken, a flag is wrong) is not restarted: it would fail the same way
 * forever. `started` rejects with its reason instead, and `m2gate start`
 * exits with it. The child reports over its IPC channel (service-command.ts):
 * `{ m2gate: 'started' }` once serving, `{ m2gate: 'failed', reason }` before exiting 1.
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

/** What a supervised service tells its supervisor over the IPC channel. */
export type ServiceReport = { m2gate: 'started' } | { m2gate: 'failed'; reason: string };

function isReport(message: unknown): message is ServiceReport {
  return typeof message === 'object' && message !== null && 'm2gate' in message;
}

/** What the start command hears of a supervised service. */
export interface SupervisorHooks {
  /** A child is about to be spawned, now or after `delayMs` (a restart's backoff). */
  spawning?(delayMs: number): void;
  /** A child that had started died; it is restarted after `restartInMs`. */
  died?(info: { pid: number | undefined; code: number | null; signal: string | null; restartInMs: number }): void;
}

export class ServiceSupervisor {
  readonly #args: string[];
  readonly #log: Logger;
  readonly #env: NodeJS.ProcessEnv;
  readonly #hooks: SupervisorHooks;
  #child: ChildProcess | undefined;
  #backoff = MIN_BACKOFF_MS;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  #everStarted = false;
  readonly #started: Promise<void>;
  #onStarted!: () => void;
  #onNeverStarted!: (err: Error) => void;
  restarts = 0;

  /** `env` is added to this process's environment for the service. */
  constructor(args: string[], log: Logger, env: NodeJS.ProcessEnv = {}, hooks: SupervisorHooks = {}) {
    this.#args = args;
    this.#hooks = hooks;
    this.#log = log;
    this.#env = env;
    this.#started = new Promise<void>((resolve, reject) => {
      this.#onStarted = resolve;
      this.#onNeverStarted = reject;
    });
    // Whoever does not await `started` must not get an unhandled rejection.
    this.#started.catch(() => {});
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /**
   * Resolves when the first child is serving; rejects, with the child's own
   * reason, if it exits before that (it is then not restarted).
   */
  get started(): Promise<void> {
    return this.#started;
  }

  start(): void {
    this.#spawn(0);
  }

  #spawn(afterMs: number): void {
    this.#hooks.spawning?.(afterMs);
    if (afterMs > 0) {
      this.#restartTimer = setTimeout(() => this.#spawn(0), afterMs);
      return;
    }
    const startedAt = Date.now();
    // The IPC channel tells the child when this process dies; see signals.ts for SIGINT.
    const child = spawn(process.execPath, [...process.execArgv, CLI, 'service', ...this.#args], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...this.#env, M2GATE_SUPERVISED: '1' },
    });
    child.channel?.unref();
    this.#child = child;
    let reason: string | undefined;
    child.on('message', (message: unknown) => {
      if (!isReport(message)) return;
      if (message.m2gate === 'failed') reason = message.reason;
      else if (!this.#everStarted) {
        this.#everStarted = true;
        this.#onStarted();
      }
    });
    // 'close', not 'exit': it comes after the IPC channel has delivered the child's last message.
    child.once('close', (code, signal) => {
      if (this.#child === child) this.#child = undefined;
      if (this.#stopping) return;
      if (!this.#everStarted) {
        this.#onNeverStarted(new Error(reason ?? `exited (${signal ?? `code ${String(code)}`}) before it started`));
        return;
      }
      if (Date.now() - startedAt >= STABLE_MS) this.#backoff = MIN_BACKOFF_MS;
      const delay = this.#backoff;
      this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF_MS);
      this.restarts++;
      this.#log.warn({ code, signal, reason, restartInMs: delay }, 'service process died; restarting');
      this.#hooks.died?.({ pid: child.pid, code, signal, restartInMs: delay });
      this.#spawn(delay);
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
