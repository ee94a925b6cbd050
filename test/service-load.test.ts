// The demo service behind the real Mongrel2 under load: 200 concurrent
// CPU-heavy requests on two worker threads, all answered, two threads at once,
// and a cheap route still answered while the heavy one is saturated.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { ipcEndpoint, startMongrel2 } from './helpers/mongrel2.js';
import { startService, stopAll, isRequestLog } from './helpers/service.js';

const FIB_27 = 196418;
const FIB_REQUESTS = 200;
const HELLO_EVERY = 40;

const agent = new Agent({ connections: FIB_REQUESTS + 10, keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  await stopAll();
  for (const c of cleanups.reverse()) await c();
  await agent.close();
});

interface FibReply {
  n: number;
  fib: number;
  thread: number;
  started: number;
  finished: number;
}

test('200 concurrent /svc/fib/27 on --workers 2 behind Mongrel2: all correct, two threads at once, /svc/hello still answered', async () => {
  const sendSpec = ipcEndpoint('send');
  const recvSpec = ipcEndpoint('recv');
  const m2 = await startMongrel2({ handlers: [{ route: '/svc/', sendSpec, sendIdent: 'a1b2c3d4-0000-4000-8000-0000000load0', recvSpec }] });
  cleanups.push(async () => {
    await m2.stop();
    m2.cleanup();
  });
  const svc = await startService(['--send', sendSpec, '--recv', recvSpec, '--workers', '2']);
  const base = `http://127.0.0.1:${m2.port}`;

  let fibDone = 0;
  const fibs: Array<Promise<FibReply>> = [];
  const hellos: Array<Promise<{ fibDoneBefore: number }>> = [];
  for (let i = 0; i < FIB_REQUESTS; i++) {
    fibs.push(
      request(`${base}/svc/fib/27`, { dispatcher: agent }).then(async (res) => {
        assert.equal(res.statusCode, 200);
        const body = (await res.body.json()) as FibReply;
        fibDone++;
        return body;
      }),
    );
    // Hello requests are issued while fib requests are in flight, between them.
    if ((i + 1) % HELLO_EVERY === 0 && i + 1 < FIB_REQUESTS) {
      hellos.push(
        request(`${base}/svc/hello`, { dispatcher: agent }).then(async (res) => {
          assert.equal(res.statusCode, 200);
          assert.equal(await res.body.text(), 'hello');
          return { fibDoneBefore: fibDone };
        }),
      );
    }
  }
  const helloResults = await Promise.all(hellos);
  console.error("HELLO", helloResults);
  const replies = await Promise.all(fibs);

  assert.equal(replies.length, FIB_REQUESTS);
  for (const r of replies) assert.deepEqual([r.n, r.fib], [27, FIB_27]);

  // Every hello answered before the fib load finished.
  for (const h of helloResults) assert.ok(h.fibDoneBefore < FIB_REQUESTS, `a hello waited for all ${FIB_REQUESTS} fib requests`);

  // Two distinct threads, and some two requests on different threads overlapped in time.
  const threads = new Set(replies.map((r) => r.thread));
  assert.equal(threads.size, 2, `threads seen: ${[...threads].join(', ')}`);
  const [a, b] = [...threads];
  const onA = replies.filter((r) => r.thread === a);
  const onB = replies.filter((r) => r.thread === b);
  const overlapping = onA.some((x) => onB.some((y) => x.started < y.finished && y.started < x.finished));
  assert.ok(overlapping, 'no two fib spans on different threads overlapped');

  // The service logged one line per request with status 200.
  const logged = await svc.waitForCount(isRequestLog(), FIB_REQUESTS + hellos.length);
  assert.ok(logged.every((l) => l.status === 200));
  const fibLogs = logged.filter((l) => l.route === 'GET /svc/fib/:n');
  console.error("WAIT", fibLogs.map((l) => Math.round(l.waitMs as number)).join(" "));
  assert.equal(fibLogs.length, FIB_REQUESTS);
  // Saturated: some requests waited for a thread.
  assert.ok(fibLogs.some((l) => (l.waitMs as number) > 10), 'no fib request ever waited for a thread');
});
