// Two service processes connected to the same Mongrel2 Handler share its
// requests (Mongrel2's PUSH deals them round-robin to connected peers, §5.1).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { fixtureRoutes, isRequestLog, mongrel2Front, startService, stopAll } from './helpers/service.js';

const N = 40;
const agent = new Agent({ connections: N, keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
after(async () => {
  await stopAll();
  await agent.close();
});

test(`two service processes on the same endpoints both serve some of ${N} requests`, async () => {
  const front = await mongrel2Front();
  const args = [fixtureRoutes('probes.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '1'];
  const services = await Promise.all([startService(args), startService(args)]);

  const pids = await Promise.all(
    Array.from({ length: N }, async () => {
      const res = await request(`${front.base}/t/whoami`, { dispatcher: agent });
      assert.equal(res.statusCode, 200);
      return ((await res.body.json()) as { pid: number }).pid;
    }),
  );
  const servedBy = services.map((s) => pids.filter((pid) => pid === s.pid).length);
  assert.equal(servedBy[0]! + servedBy[1]!, N, 'every answer came from one of the two');
  assert.ok(servedBy.every((n) => n > 0), `served: ${servedBy.join(' + ')}`);

  // Each process logged exactly the requests it answered.
  const logged = await Promise.all(services.map((s, i) => s.waitForCount(isRequestLog(), servedBy[i]!)));
  for (const [i, s] of services.entries()) {
    assert.equal(logged[i]!.length, servedBy[i]);
    assert.equal(s.filter(isRequestLog()).length, servedBy[i]);
  }
});
