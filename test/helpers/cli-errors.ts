// Helpers for the tests of what the CLI prints when it cannot start: one line,
// no stack, the right exit code; and configs whose Handlers sit on given ports.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CliResult } from './service.js';

/** What a failed start must look like: `code`, one stderr line `m2gate: …` matching `message`, no stack. */
export function assertOneLine(res: CliResult, code: 1 | 2, message: RegExp, what: string): void {
  assert.equal(res.signal, null, `${what}: killed (it did not exit by itself)\n${res.stderr}`);
  assert.equal(res.code, code, `${what}: ${res.stderr}`);
  assert.doesNotMatch(res.stderr, /\n\s+at /, `${what}: a stack trace\n${res.stderr}`);
  // Node's own warnings (such as the one for ESM syntax in a CommonJS file) are not ours to count.
  const lines = res.stderr
    .split('\n')
    .filter((l) => l !== '' && l !== "Run 'm2gate --help' for usage." && !/^\(node:\d+\) |^\(Use `node --trace-warnings/.test(l));
  assert.equal(lines.length, 1, `${what}: one line expected\n${res.stderr}`);
  assert.match(lines[0]!, /^m2gate: /, what);
  assert.match(lines[0]!, message, what);
}

/** Holds 127.0.0.1:`port` (0: any) until closed. */
export async function holdPort(port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return {
    port: address.port,
    close: async () => {
      server.close();
      await once(server, 'close');
    },
  };
}

/** Asserts that nothing holds 127.0.0.1:`port` any more: it can be bound again. */
export async function assertReleased(port: number, what: string): Promise<void> {
  const held = await holdPort(port).catch((err: unknown) => assert.fail(`${what}: port ${port} still bound (${(err as Error).message})`));
  await held.close();
}

export interface HandlerLine {
  sendSpec: string;
  recvSpec: string;
  transport?: 'link' | 'mongrel2';
}

/** A mongrel2.conf in `dir` with one Handler per line (routes /h0/, /h1/, …), on `port`. Returns its path. */
export function writeConf(dir: string, handlers: HandlerLine[], port = 6767): string {
  const lines = handlers.map(
    (h, i) =>
      `h${i} = Handler(send_spec='${h.sendSpec}', send_ident='0000000${i}-0000-4000-8000-000000000000', recv_spec='${h.recvSpec}', recv_ident=''${h.transport === 'link' ? ", transport='link'" : ''})`,
  );
  const routes = handlers.map((_, i) => `'/h${i}/': h${i}`).join(', ');
  const file = join(dir, 'mongrel2.conf');
  writeFileSync(
    file,
    `${lines.join('\n')}
main = Server(uuid="c0ffee00-0000-4000-8000-00000000e118", name="t", port=${port}, bind_addr="127.0.0.1",
  access_log="l", error_log="e", pid_file="p", default_host="localhost",
  hosts=[Host(name="localhost", routes={ ${routes} })])
servers = [main]
`,
  );
  return file;
}
