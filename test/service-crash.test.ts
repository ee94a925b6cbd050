// A worker thread that dies under a task (an uncaught error outside the task,
// process.exit in the worker) costs only that request: 500 with an error id in
// the log, other requests in flight are unaffected, and the pool is back at full
// size for the next ones. Behind the real Mongrel2.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { fixtureRoutes, gate, isMsg, isProbe, mongrel2Front, startService, stopAll, type Mongrel2Front, type ServiceProcess } from './helpers/service.js';

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const agent = new Agent({ connections: 8, keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
let front: Mongrel2Front;
let svc: ServiceProcess;

before(async () => {
  front = await mongrel2Front();
  svc = await startService([fixtureRoutes('probes.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '2']);
});
after(async () => {
  await stopAll();
  await agent.close();
});

async function get(path: string): Promise<{ status: number; body: string }> {
  const res = await request(`${front.base}${path}`, { dispatcher: agent });
  return { status: res.statusCode, body: await res.body.text() };
}

interface Met {
  tag: string;
  thread: number;
}

/** Two requests that only finish if they run at the same time, so on two threads. */
async function bothThreads(tag: string): Promise<number[]> {
  const met = await Promise.all([get(`/t/meet?n=2&tag=${tag}`), get(`/t/meet?n=2&tag=${tag}`)]);
  for (const m of met) assert.equal(m.status, 200, m.body);
  const threads = met.map((m) => (JSON.parse(m.body) as Met).thread);
  assert.notEqual(threads[0], threads[1]);
  return threads;
}

for (const [route, cause] of [
  ['/t/crash-later', /boom/],
  ['/t/exit', /worker exited with code: 1/],
] as const) {
  test(`a thread that dies under ${route} costs only its own request`, async () => {
    const threadsBefore = await bothThreads(`before-${route}`);
    const from = svc.lines.length;
    // Another request holds the other thread meanwhile.
    const other = gate();
    const holding = get(`/t/hold?${other.query(`other-${route}`)}`);
    const held = await svc.waitFor(isProbe('started', `other-${route}`), { from });

    const res = await get(`${route}?tag=crash`);
    assert.equal(res.status, 500);
    const id = UUID.exec(res.body)?.[0];
    assert.ok(id, res.body);
    assert.doesNotMatch(res.body, /boom|exited|\bat /);
    const logged = await svc.waitFor(isMsg('worker failed while running the task'), { from });
    assert.equal(logged.errorId, id);
    assert.equal(logged.route, `GET ${route}`);
    assert.match(JSON.stringify(logged.err), cause);
    const crashed = await svc.waitFor(isProbe('started', 'crash'), { from });
    assert.notEqual(crashed.thread, held.thread);

    // The request on the other thread is unaffected.
    other.open();
    const survivor = await holding;
    assert.equal(survivor.status, 200);
    assert.equal((JSON.parse(survivor.body) as Met).thread, held.thread);

    // Back at full size: two requests run at once, one of them on the new thread.
    const threadsAfter = await bothThreads(`after-${route}`);
    assert.ok(threadsAfter.includes(held.thread as number));
    assert.ok(threadsAfter.some((t) => !threadsBefore.includes(t)), 'no new thread replaced the dead one');
    assert.deepEqual([(await get('/t/hello')).status], [200]);
  });
}
