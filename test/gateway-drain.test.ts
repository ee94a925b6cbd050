// SIGTERM drains the `m2gate gateway` process (DESIGN: "SIGTERM drains: stop accepting, finish
// in-flight work, then exit"): with a request held by the handler, SIGTERM closes the listener
// at once, the held request is still answered when the handler replies, and the process exits 0.
// Runs the built CLI (`npm run build` first).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { confText, fakeHandler, handlerConf, RawClient, spawnM2gate, tempTree, type FakeHandler, type LoggedProcess } from './helpers/gateway.js';

const H = handlerConf('/h/', 'd7a1e000-0000-4000-8000-00000000drain');
const dir = tempTree();
const conf = join(dir, 'mongrel2.conf');
writeFileSync(conf, confText({ handlers: [H] }));

let gw: LoggedProcess | undefined;
let handler: FakeHandler | undefined;
after(async () => {
  handler?.stop();
  gw?.kill();
  await gw?.exited;
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves with the error code of a TCP connect to `port` (undefined if it connected). */
function connectError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(undefined);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
  });
}

test('SIGTERM: new connections refused, the in-flight request still answered, then exit 0', async () => {
  gw = spawnM2gate(['gateway', '--config', conf, '--port', '0', '--drain-timeout', '10000']);
  const listening = await gw.waitFor((l) => l.msg === 'gateway listening', 'gateway listening');
  const port = listening.port as number;
  const p = gw;
  handler = await fakeHandler(H, () => p.waitFor((l) => l.msg === 'handler connected', 'handler connected'));

  // An idle keep-alive connection, which the drain closes at once.
  const idle = await RawClient.open(port);
  idle.write('GET /h/idle HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const first = await handler.next();
  await handler.reply(first.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nidle');
  assert.equal((await idle.response()).body.toString(), 'idle');

  const c = await RawClient.open(port);
  c.write('GET /h/held HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const { msg } = await handler.next();

  gw.child.kill('SIGTERM');
  // Logged once the listener is closed ('draining' comes before close() starts).
  const stopped = await gw.waitFor((l) => l.msg === 'gateway stopped accepting', 'gateway stopped accepting');
  assert.equal(stopped.inFlight, 1);
  assert.equal(await connectError(port), 'ECONNREFUSED');
  assert.equal((await idle.end()).length, 0, 'the idle connection is closed without a response');

  let exitedEarly = false;
  void gw.exited.then(() => (exitedEarly = true));
  await handler.reply(msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nstill served');
  const r = await c.response();
  assert.equal(exitedEarly, false);
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'still served');
  await c.end();

  const exit = await gw.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, gw.stderr());
  assert.equal(gw.lines.find((l) => l.msg === 'gateway stopped')?.drained, true);
});
