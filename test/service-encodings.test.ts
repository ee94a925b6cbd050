// Both Handler header encodings (json and tnetstring, §3.1) are served, by one
// service connected to two Mongrel2 Handlers at once (one of each), and a
// disconnect notice in either encoding aborts the work.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import { startMongrel2 } from './helpers/mongrel2.js';
import { endpoint, fakeFront, fixtureRoutes, gate, isMsg, isProbe, parseHttp, startService, stopAll } from './helpers/service.js';

const agent = new Agent({ connections: 4, keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  await stopAll();
  for (const c of cleanups) await c();
  await agent.close();
});

test('one service behind a json Handler and a tnetstring Handler of the same Mongrel2 serves both', async () => {
  const json = { send: endpoint('send'), recv: endpoint('recv'), ident: '0c0c0c0c-0000-4000-8000-00000000json' };
  const tnet = { send: endpoint('send'), recv: endpoint('recv'), ident: '0c0c0c0c-0000-4000-8000-00000000tnet' };
  const m2 = await startMongrel2({
    handlers: [
      { route: '/svc/hello', sendSpec: json.send, sendIdent: json.ident, recvSpec: json.recv, protocol: 'json' },
      { route: '/svc/hash', sendSpec: tnet.send, sendIdent: tnet.ident, recvSpec: tnet.recv, protocol: 'tnetstring' },
    ],
  });
  cleanups.push(async () => {
    await m2.stop();
    m2.cleanup();
  });
  const svc = await startService(['--send', json.send, '--send', tnet.send, '--recv', json.recv, '--recv', tnet.recv, '--workers', '2', '--protocol', 'json']);
  const base = `http://127.0.0.1:${m2.port}`;

  const hello = await request(`${base}/svc/hello`, { dispatcher: agent });
  assert.equal(await hello.body.text(), 'hello');

  const body = Buffer.from([0, 1, 2, 0x2c, 0x3a, 0x7d, 0x5d, 0xff, 13, 10]);
  for (const rounds of [1, 3]) {
    const res = await request(`${base}/svc/hash?rounds=${rounds}`, { dispatcher: agent, method: 'POST', body });
    assert.equal(res.statusCode, 200);
    let digest = body;
    for (let i = 0; i < rounds; i++) digest = createHash('sha256').update(digest).digest();
    assert.deepEqual(await res.body.json(), { sha256: digest.toString('hex'), rounds });
  }

  // The tnetstring requests really were tnetstring: --protocol json warned, once.
  const warned = await svc.waitFor(isMsg('the front sends another header encoding than --protocol says'));
  assert.deepEqual([warned.expected, warned.got], ['json', 'tnetstring']);
  assert.equal(svc.filter(isMsg('the front sends another header encoding than --protocol says')).length, 1);
});

for (const encoding of ['json', 'tnetstring'] as const) {
  test(`${encoding}: request with a body and repeated headers, then a disconnect notice, from a fake front`, async () => {
    const front = await fakeFront();
    const svc = await startService([fixtureRoutes('probes.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '1', '--protocol', encoding]);
    const body = Buffer.from([0, 0xff, 0x2c, 0x3a, 0x7d, 0x5d, 0x7b, 13, 10]);
    await front.request(1, '/t/echo', { method: 'POST', encoding, body, query: 'k=1&k=2&name=caf%C3%A9', headers: { 'x-dup': ['a', 'b'] } });
    assert.deepEqual(JSON.parse(parseHttp((await front.next()).body).body), {
      body: body.toString('base64'),
      dup: ['a', 'b'],
      query: { k: ['1', '2'], name: 'café' },
    });
    await front.request(3, '/t/items/caf%C3%A9', { encoding });
    assert.deepEqual(JSON.parse(parseHttp((await front.next()).body).body), { id: 'café' });

    await front.request(2, '/t/hold', { encoding, query: gate().query(`held-${encoding}`) });
    await svc.waitFor(isProbe('started', `held-${encoding}`));
    await front.disconnect(2, encoding);
    assert.equal((await svc.waitFor(isProbe('aborted', `held-${encoding}`))).aborted, true);
    assert.equal(svc.filter(isMsg('the front sends another header encoding than --protocol says')).length, 0);
  });
}
