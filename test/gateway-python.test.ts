// A Mongrel2 handler not written in Node serves routes behind the gateway unchanged
// (DESIGN: "existing Mongrel2 handlers in any language work behind the m2gate gateway").
// test/fixtures/python/m2_handler.py implements the handler protocol itself with Debian's
// python3-zmq; one process per header encoding.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { exchange, handlerConf, spawnLogged, startGateway, type LoggedProcess } from './helpers/gateway.js';

// Debian's interpreter, not whatever `python3` is first on PATH (pyenv's has no zmq).
const PYTHON = '/usr/bin/python3';
const HANDLER = fileURLToPath(new URL('./fixtures/python/m2_handler.py', import.meta.url));

const check = spawnSync(PYTHON, ['-c', 'import zmq'], { encoding: 'utf8' });
if (check.status !== 0) {
  throw new Error(`${PYTHON} cannot import zmq: install Debian's python3-zmq (apt-get install -y python3-zmq)\n${check.error?.message ?? check.stderr}`);
}

const JSON_H = handlerConf('/py/', 'b00c0de0-0000-4000-8000-0000python0js');
const TNET_H = handlerConf('/pyt/', 'b00c0de0-0000-4000-8000-0000python0tn', 'tnetstring');
const rig = await startGateway({ handlers: [JSON_H, TNET_H] });
const procs: LoggedProcess[] = [];
after(async () => {
  for (const p of procs) p.kill();
  await Promise.all(procs.map((p) => p.exited));
  await rig.close();
});

async function startPython(h: typeof JSON_H): Promise<LoggedProcess> {
  const p = spawnLogged(PYTHON, [HANDLER, h.sendSpec, h.recvSpec]);
  procs.push(p);
  await Promise.all([p.waitFor((l) => l.event === 'ready', 'ready'), rig.pool(h.route).whenPeer()]);
  return p;
}
await Promise.all([startPython(JSON_H), startPython(TNET_H)]);

for (const [encoding, route] of [
  ['json', '/py/'],
  ['tnetstring', '/pyt/'],
] as const) {
  test(`a Python handler serves ${route} behind the gateway (${encoding} headers)`, async () => {
    const r = await exchange(
      rig.port,
      `POST ${route}echo?a=1&b=caf%C3%A9 HTTP/1.1\r\nHost: localhost\r\nX-Test: from node\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world`,
    );
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r.body.toString()), {
      handler: 'python',
      encoding,
      method: 'POST',
      path: `${route}echo`,
      query: 'a=1&b=caf%C3%A9',
      pattern: route,
      'x-test': 'from node',
      body: 'hello world',
    });
  });

  test(`keep-alive and HTTP/1.0 close with the Python handler (${encoding})`, async () => {
    const c = await rig.client();
    for (const n of [1, 2]) {
      c.write(`GET ${route}ka/${n} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      const r = await c.response();
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body.toString()) as { path: string }).path, `${route}ka/${n}`);
    }
    assert.equal(c.ended, false);
    // HTTP/1.0: the handler answers, then sends the empty close reply (§4.4); the client gets
    // one response and the connection ends.
    c.write(`GET ${route}bye HTTP/1.0\r\nHost: localhost\r\n\r\n`);
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.equal((await c.end()).length, 0);
  });
}
