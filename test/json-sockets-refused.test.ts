// Mongrel2's JSON/XML sockets (§3.8: `@name {json}\0` and `<tag>…\0` on the HTTP port, from the
// Flash XMLSocket era) are refused, with a definite end for the client rather than a wait:
// - behind the real Mongrel2, an `m2gate service` whose Handler a `@chat` route names closes
//   each such connection (the close message) and logs why; Mongrel2 then closes the client;
// - the standalone gateway speaks HTTP only: those bytes are not HTTP, so the client gets a
//   400 and the connection closes, and no handler sees anything.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { startMongrel2, ipcEndpoint } from './helpers/mongrel2.js';
import { fixtureRoutes, isMsg, startService, stopAll } from './helpers/service.js';
import { fakeHandler, handlerConf, startGateway } from './helpers/gateway.js';

after(stopAll);

/** Writes `bytes` on a fresh connection and returns everything read until the peer closes. */
async function exchange(port: number, bytes: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(bytes);
  const ended = once(socket, 'end');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the connection was not closed within 10 s')), 10_000)));
  try {
    await Promise.race([ended, deadline]);
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
  return Buffer.concat(chunks).toString('latin1');
}

test('behind Mongrel2: a JSON socket message to an m2gate service is refused with a close, and logged', async () => {
  const send = ipcEndpoint('json-send');
  const recv = ipcEndpoint('json-recv');
  const sender = '54c9a8d7-0000-4000-8000-00000000json';
  const m2 = await startMongrel2({ handlers: [{ route: '@chat', sendSpec: send, sendIdent: sender, recvSpec: recv, protocol: 'json' }, { route: '/', sendSpec: send, sendIdent: sender, recvSpec: recv, protocol: 'json' }] });
  const svc = await startService([fixtureRoutes('probes.mjs'), '--send', send, '--recv', recv, '--workers', '1']);
  try {
    const got = await exchange(m2.port, '@chat {"msg":"hi"}\0');
    // Mongrel2 writes nothing on a close: the client sees the end of the connection, no data.
    assert.equal(got, '');
    const line = await svc.waitFor(isMsg('JSON/XML socket message refused: connection closed'));
    assert.deepEqual([line.kind, line.path], ['json', '@chat']);
    // HTTP on the same front is still served.
    const http = await exchange(m2.port, 'GET /t/hello HTTP/1.0\r\n\r\n');
    assert.match(http, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nhello$/);
  } finally {
    await m2.stop();
  }
});

test('the standalone gateway: JSON and XML socket messages get 400 and a close; the handler sees nothing', async () => {
  const H = handlerConf('/', '1a2b3c4d-0000-4000-8000-00000000jsck');
  const rig = await startGateway({ handlers: [H] });
  const handler = await fakeHandler(H, rig.pool('/'));
  try {
    for (const bytes of ['@chat {"msg":"hi"}\0', '<policy-file-request/>\0']) {
      const got = await exchange(rig.port, bytes);
      assert.match(got, /^HTTP\/1\.1 400 Bad Request\r\n/, JSON.stringify(bytes));
    }
    assert.equal(handler.queued, 0);
    assert.equal(rig.pool('/').stats.sent, 0);
  } finally {
    handler.stop();
    await rig.close();
  }
});
