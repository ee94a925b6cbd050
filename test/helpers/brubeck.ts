/** The Python brubeck-service peer (test/fixtures/python/brubeck_peer.py), driven from tests. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJsonLines, type LogLine } from './ndjson.js';

// Debian's interpreter, not whatever `python3` is first on PATH (pyenv's has no zmq).
export const PYTHON = '/usr/bin/python3';
export const PEER = fileURLToPath(new URL('../fixtures/python/brubeck_peer.py', import.meta.url));
const WAIT_MS = 10_000;

/** Fails (never skips) without python3-zmq. */
export function requirePythonZmq(): void {
  const check = spawnSync(PYTHON, ['-c', 'import zmq'], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw new Error(`${PYTHON} cannot import zmq: install Debian's python3-zmq (apt-get install -y python3-zmq)\n${check.error?.message ?? check.stderr}`);
  }
}

/** A passphrase file (0600) in a fresh directory. */
export function passphraseFile(secret: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'm2gate-brubeck-')), 'passphrase');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return file;
}

export interface Peer {
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  /** Lines matching `pred` once there are `n` of them (seen or future); rejects on exit or deadline. */
  waitForCount(pred: (line: LogLine) => boolean, n: number, what: string): Promise<LogLine[]>;
  waitFor(pred: (line: LogLine) => boolean, what: string): Promise<LogLine>;
  /** One command line to the client's stdin. */
  command(cmd: Record<string, unknown>): void;
  stop(): Promise<void>;
}

export function spawnPeer(args: string[]): Peer {
  const child = spawn(PYTHON, [PEER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  let stderr = '';
  let exited = false;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of [...listeners]) l();
  };
  readJsonLines(child.stdout, (line) => lines.push(line), notify);
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const closed = new Promise<void>((resolve) =>
    child.on('close', () => {
      exited = true;
      notify();
      resolve();
    }),
  );
  const waitForCount = (pred: (line: LogLine) => boolean, n: number, what: string): Promise<LogLine[]> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`python peer: no ${n} × '${what}' within ${WAIT_MS} ms (${lines.filter(pred).length} seen)\n${stderr}`));
      }, WAIT_MS);
      const check = (): void => {
        const found = lines.filter(pred);
        if (found.length >= n) {
          clearTimeout(timer);
          listeners.delete(check);
          resolve(found);
        } else if (exited) {
          clearTimeout(timer);
          listeners.delete(check);
          reject(new Error(`python peer exited before '${what}'\n${stderr}`));
        }
      };
      listeners.add(check);
      check();
    });
  return {
    child,
    lines,
    waitForCount,
    waitFor: async (pred, what) => (await waitForCount(pred, 1, what))[0]!,
    command: (cmd) => void child.stdin.write(`${JSON.stringify(cmd)}\n`),
    async stop() {
      if (!exited) child.kill('SIGKILL');
      await closed;
    },
  };
}
