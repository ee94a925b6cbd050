/**
 * Readiness checks with deadlines: a front is ready when one real request
 * through it is answered 200 (which also proves the handler behind it is
 * connected), a file is ready when it exists.
 */
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import type { Spawned } from './proc.js';

export interface HttpAnswer {
  status: number;
  body: Buffer;
}

/** One GET on a fresh connection. @throws Error on a socket error or after `timeoutMs`. */
export function httpGet(url: string, timeoutMs = 2000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function describe(procs: Spawned[]): string {
  return procs.map((p) => `--- ${p.name} (pid ${p.pid}${p.exited() ? ', exited' : ''}) log tail ---\n${p.logTail()}`).join('\n');
}

/**
 * Polls `url` until it answers 200, at most `deadlineMs` (default 15,000).
 * Mongrel2 holds a request while no handler is connected (§5.2), so each
 * attempt has its own short timeout.
 *
 * @throws Error naming the last failure and the processes' log tails when the deadline passes or one of `procs` exits.
 */
export async function waitHttp200(url: string, procs: Spawned[], deadlineMs = 15_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    const dead = procs.find((p) => p.exited());
    if (dead) throw new Error(`${dead.name} exited before ${url} was ready\n${describe(procs)}`);
    try {
      const answer = await httpGet(url, Math.min(2000, Math.max(100, deadline - Date.now())));
      if (answer.status === 200) return;
      last = `status ${answer.status}: ${answer.body.toString('utf8').slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await delay(100);
  }
  throw new Error(`${url} not ready within ${deadlineMs} ms (last: ${last})\n${describe(procs)}`);
}

/** Polls until `path` exists, at most `deadlineMs`. @throws Error on the deadline or when `proc` exits. */
export async function waitFile(path: string, proc: Spawned, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (existsSync(path)) return;
    if (proc.exited()) throw new Error(`${proc.name} exited before writing ${path}\n${describe([proc])}`);
    await delay(50);
  }
  throw new Error(`${path} did not appear within ${deadlineMs} ms\n${describe([proc])}`);
}
