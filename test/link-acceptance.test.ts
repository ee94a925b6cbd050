// Issue #6's acceptance tests for the m2gate link, run as a user runs m2gate: the built CLI
// (dist/, `npm run build` first) as child processes — `m2gate start --services 2`, or
// `m2gate gateway` plus `m2gate service --connect SPEC` — on a mongrel2.conf whose /svc/
// Handler has transport='link', driven over HTTP by concurrent undici loops.
//
// Every wait is on an event (a log line, a response); deadlines only turn a hang into a
// failure. Figures (restart time, p99s, per-service counts) are printed as test diagnostics.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fixtureRoutes } from './helpers/service.js';
import { RawClient } from './helpers/gateway.js';
import { freePort } from './helpers/net.js';
import { isMsg, killAll, until, linkEndpoint, loadLoop, percentile, spawnCli, writeLinkConf, type Cli, type LogLine, type Outcome } from './helpers/link.js';

after(killAll);

const FIB25 = 75_025;
/** The gateway's handler timeout in these tests: no request may wait longer. */
const DEADLINE_MS = 5000;

const isGateway = (line: LogLine): boolean => line.component === 'gateway';
const isService = (line: LogLine): boolean => line.component === 'service';
const fibOk = (o: Outcome): boolean => o.status === 200 && (JSON.parse(o.body) as { fib?: number }).fib === FIB25;

function statuses(outcomes: readonly Outcome[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.status === 0 ? 'error' : String(o.status);
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** A link gateway alone: `m2gate gateway --config X --port P`. */
async function gateway(config: string, port: number, extra: string[] = []): Promise<{ cli: Cli; port: number }> {
  const cli = spawnCli(['gateway', '--config', config, '--port', String(port), '--handler-timeout', String(DEADLINE_MS), ...extra]);
  const listening = await cli.waitFor(isMsg('gateway listening'), 'gateway listening');
  return { cli, port: Number(listening.port) };
}

/** `m2gate service [ROUTES] --connect SPEC ...`, resolved once the gateway has answered its READY. */
async function service(spec: string, args: string[] = [], routes?: string): Promise<Cli> {
  const cli = spawnCli(['service', ...(routes ? [routes] : []), '--connect', spec, ...args]);
  await cli.waitFor(isMsg('connected to the gateway'), 'connected to the gateway');
  return cli;
}

/** Waits until the gateway's latest 'handler connected' line counts `n` services. */
function servicesConnected(cli: Cli, n: number, from = 0): Promise<LogLine> {
  return cli.waitFor((l) => isGateway(l) && l.msg === 'handler connected' && Number(l.services) >= n, `${n} services connected`, from);
}

test('fault: SIGKILL one of two services under load — every request answered once, within the deadline; the supervisor restarts it within 2 s and it serves again', async (t) => {
  const spec = await linkEndpoint();
  const config = writeLinkConf({ sendSpec: spec });
  const m2 = spawnCli(['start', '--config', config, '--port', '0', '--services', '2', '--workers', '2', '--handler-timeout', String(DEADLINE_MS)]);
  t.after(() => m2.stop('SIGKILL'));
  const serving = await m2.waitFor((l) => String(l.msg).startsWith('m2gate is serving'), 'm2gate is serving');
  await servicesConnected(m2, 2);
  const firstPids = await m2.log.when(() => {
    const pids = m2.log.items.filter((l) => isService(l) && l.msg === 'connected to the gateway').map((l) => Number(l.pid));
    return pids.length >= 2 ? pids : undefined;
  }, 'both services connected to the gateway');
  assert.equal(new Set(firstPids).size, 2);
  const [victim, survivor] = firstPids as [number, number];

  const load = loadLoop(`http://127.0.0.1:${String(serving.port)}`, { connections: 6, paths: ['/svc/fib/25'], timeoutMs: 3 * DEADLINE_MS });
  // Both services are busy before the kill.
  for (const pid of [victim, survivor]) await m2.waitFor((l) => l.msg === 'request' && l.pid === pid, `a request served by ${pid}`);
  await load.outcomes.when(() => (load.outcomes.items.length >= 100 ? true : undefined), '100 answers before the kill');

  const from = m2.log.items.length;
  const killedAt = Date.now();
  process.kill(victim, 'SIGKILL');
  const lost = await m2.waitFor((l) => isGateway(l) && l.msg === 'handler lost', 'handler lost', from);
  const back = await m2.waitFor((l) => isGateway(l) && l.msg === 'handler connected', 'the restarted service connected', from);
  const restartMs = Number(back.time) - killedAt;
  const reborn = await m2.waitFor((l) => isService(l) && l.msg === 'connected to the gateway', "the new service's line", from);
  const died = await m2.waitFor(isMsg('service process died; restarting'), "the supervisor's line", from);
  const started = await m2.waitFor((l) => isService(l) && l.msg === 'service started', 'the new service started', from);
  const newPid = Number(reborn.pid);
  assert.notEqual(newPid, victim);
  assert.notEqual(newPid, survivor);
  // It takes work again: requests logged by the new process, answered 200.
  await m2.waitFor((l) => l.msg === 'request' && l.pid === newPid && l.status === 200, 'a request served by the new process');
  const sentAfterRestart = load.sent;
  await load.outcomes.when(() => (load.outcomes.items.length >= sentAfterRestart + 100 ? true : undefined), '100 more answers after the restart');
  await load.stop();

  const outcomes = load.outcomes.items;
  const latencies = outcomes.map((o) => o.end - o.start);
  const max = Math.max(...latencies);
  const counts = statuses(outcomes);
  const byNew = m2.log.count((l) => l.msg === 'request' && l.pid === newPid);
  t.diagnostic(
    `${outcomes.length} requests: ${JSON.stringify(counts)}; handler lost: why=${String(lost.why)} retried=${String(lost.retried)} failed=${String(lost.failed)}; ` +
      `restart (kill → gateway 'handler connected') ${restartMs} ms (supervisor saw the death at +${Number(died.time) - killedAt}, ` +
      `the new service had its threads up at +${Number(started.time) - killedAt}); new pid served ${byNew}; latency p50 ${percentile(latencies, 50).toFixed(1)} p99 ${percentile(latencies, 99).toFixed(1)} max ${max.toFixed(1)} ms`,
  );

  // Exactly one answer per request sent: every loop iteration settled with a status, none with an error.
  assert.equal(outcomes.length, load.sent);
  assert.equal(counts.error, undefined, outcomes.find((o) => o.status === 0)?.error);
  assert.deepEqual(Object.keys(counts).filter((s) => s !== '200' && s !== '502'), [], JSON.stringify(counts));
  assert.ok(outcomes.filter((o) => o.status === 200).every(fibOk), 'every 200 carries fib(25)');
  // The kill caught requests in flight (six loops over two services), and each was accounted for:
  // 502 only for what the gateway says it could not retry.
  assert.ok(Number(lost.retried) + Number(lost.failed) >= 1, 'the victim held no request when it died');
  assert.equal(counts['502'] ?? 0, Number(lost.failed));
  assert.ok(max < DEADLINE_MS, `the slowest answer took ${max.toFixed(0)} ms`);
  assert.ok(restartMs < 2000, `restarted in ${restartMs} ms`);
  assert.equal(m2.log.count((l) => l.msg === 'service process died; restarting'), 1);

  const exit = await m2.stop('SIGTERM');
  assert.equal(exit.code, 0, m2.stderr());
});

test('imbalance: a slow service gets less work, and the p99 stays within 1.5× of the fast service alone', async (t) => {
  const spec = await linkEndpoint();
  const config = writeLinkConf({ sendSpec: spec });
  const gw = await gateway(config, 0);
  t.after(() => gw.cli.stop('SIGKILL'));
  const origin = `http://127.0.0.1:${gw.port}`;
  const fast = await service(spec, ['--workers', '1']);
  t.after(() => fast.stop('SIGKILL'));

  const CONNECTIONS = 32;
  // One pause (a GC, the scheduler) delays every request in flight at once, so 1 % of a small
  // sample can be a single event: enough requests that the p99 needs several.
  const MEASURED = 3000;
  /** MEASURED answers after `warmup`, counted per service from their own request lines. */
  async function phase(services: Cli[], warmup: number): Promise<{ p99: number; p50: number; counts: number[]; outcomes: Outcome[] }> {
    const load = loadLoop(origin, { connections: CONNECTIONS, paths: ['/svc/fib/25'] });
    await load.outcomes.when(() => (load.outcomes.items.length >= warmup ? true : undefined), 'warm-up');
    const from = services.map((s) => s.log.items.length);
    const start = load.outcomes.items.length;
    await load.outcomes.when(() => (load.outcomes.items.length >= start + MEASURED ? true : undefined), `${MEASURED} answers`, 60_000);
    const counts = services.map((s, i) => s.log.count((l) => l.msg === 'request', from[i]));
    await load.stop();
    const outcomes = load.outcomes.items.slice(start, start + MEASURED);
    const latencies = outcomes.map((o) => o.end - o.start);
    return { p99: percentile(latencies, 99), p50: percentile(latencies, 50), counts, outcomes };
  }

  // The first phase also warms the gateway and the fast service up (JIT, heap): a longer warm-up,
  // or its p99 would hold start-up costs the second phase does not pay.
  const alone = await phase([fast], 1500);
  const slow = await service(spec, ['--workers', '1'], fixtureRoutes('slow-fib.mjs'));
  t.after(() => slow.stop('SIGKILL'));
  await servicesConnected(gw.cli, 2);
  const both = await phase([fast, slow], 500);

  const [fastCount, slowCount] = both.counts as [number, number];
  const ratio = both.p99 / alone.p99;
  const bySlow = both.outcomes.filter((o) => o.body.includes('"slow":true')).map((o) => o.end - o.start);
  const byFast = both.outcomes.filter((o) => !o.body.includes('"slow":true')).map((o) => o.end - o.start);
  t.diagnostic(`with both: answers by the slow service p50 ${percentile(bySlow, 50).toFixed(1)} p99 ${percentile(bySlow, 99).toFixed(1)}; by the fast one p50 ${percentile(byFast, 50).toFixed(1)} p99 ${percentile(byFast, 99).toFixed(1)} ms`);
  t.diagnostic(
    `fast alone: p50 ${alone.p50.toFixed(1)} p99 ${alone.p99.toFixed(1)} ms; fast + slow: p50 ${both.p50.toFixed(1)} p99 ${both.p99.toFixed(1)} ms ` +
      `(ratio ${ratio.toFixed(2)}); requests served during the measured phase: fast ${fastCount}, slow ${slowCount}`,
  );
  for (const phaseOutcomes of [alone.outcomes, both.outcomes]) {
    assert.deepEqual(statuses(phaseOutcomes), { '200': MEASURED });
    assert.ok(phaseOutcomes.every(fibOk));
  }
  assert.ok(slowCount > 0, 'the slow service took part');
  // Round-robin would split a closed loop evenly; the link gives the slow one clearly less.
  assert.ok(slowCount < 0.8 * fastCount, `the slow service got ${slowCount}, the fast one ${fastCount}`);
  assert.ok(ratio <= 1.5, `p99 ${both.p99.toFixed(1)} ms with the slow service vs ${alone.p99.toFixed(1)} ms for the fast one alone`);
});

test('gateway restarted under load (stopped, then killed): the services reconnect without restarting, and after recovery nothing fails', async (t) => {
  const spec = await linkEndpoint();
  const config = writeLinkConf({ sendSpec: spec });
  const port = await freePort();
  let gw = await gateway(config, port);
  t.after(() => gw.cli.stop('SIGKILL'));
  const services = [await service(spec, ['--workers', '2']), await service(spec, ['--workers', '2'])];
  t.after(() => Promise.all(services.map((s) => s.stop('SIGKILL'))));
  await servicesConnected(gw.cli, 2);

  const load = loadLoop(`http://127.0.0.1:${port}`, { connections: 4, paths: ['/svc/fib/20', '/svc/hello'] });
  await load.outcomes.when(() => (load.outcomes.items.length >= 100 ? true : undefined), '100 answers before the restart');
  // A graceful restart (SIGTERM: the gateway drains, then says BYE), then a crash (SIGKILL: the
  // services only see their connection drop).
  let roundFrom = 0;
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const from = services.map((s) => s.log.items.length);
    const old = gw.cli;
    const exit = await old.stop(signal);
    if (signal === 'SIGTERM') assert.equal(exit.code, 0, old.stderr());
    const losses = await Promise.all(services.map((s, i) => s.waitFor(isMsg('lost the gateway'), 'lost the gateway', from[i])));
    const restartedAt = Date.now();
    gw = await gateway(config, port);
    const reconnected = await Promise.all(services.map((s, i) => s.waitFor(isMsg('connected to the gateway'), 'connected to the gateway again', from[i])));
    await servicesConnected(gw.cli, 2);
    const recoveredAt = performance.now();
    const countFrom = services.map((s) => s.log.items.length);
    const answeredAt = load.outcomes.items.length;
    await load.outcomes.when(
      () => (load.outcomes.items.slice(answeredAt).filter((o) => o.start > recoveredAt).length >= 200 ? true : undefined),
      '200 answers to requests sent after recovery',
    );
    // Settled requests sent after recovery (those still in flight belong to the next round).
    const afterRecovery = load.outcomes.items.filter((o) => o.start > recoveredAt);
    const during = load.outcomes.items.slice(roundFrom, answeredAt);
    roundFrom = load.outcomes.items.length;
    const served = services.map((s, i) => s.log.count((l) => l.msg === 'request', countFrom[i]));
    const reconnectMs = Math.max(...reconnected.map((l) => Number(l.time))) - restartedAt;
    t.diagnostic(
      `${signal}: loss seen as '${losses.map((l) => String(l.why)).join("', '")}'; both back ${reconnectMs} ms after the new gateway was spawned; ` +
        `until recovery ${JSON.stringify(statuses(during))}; after recovery ${JSON.stringify(statuses(afterRecovery))}; served after recovery: ${served.join(', ')}`,
    );
    assert.deepEqual(statuses(afterRecovery), { '200': afterRecovery.length }, afterRecovery.find((o) => o.status !== 200)?.error);
    for (const [i, s] of services.entries()) {
      // The same processes: started once, never exited, reconnected after their loss.
      assert.equal(reconnected[i]!.pid, s.pid);
      assert.equal(s.child.exitCode, null);
      assert.ok(served[i]! > 0, `service ${i} took work after recovery`);
    }
  }
  await load.stop();
  for (const s of services) assert.equal(s.log.count(isMsg('service started')), 1);
});

/** Sends GET /svc/hello and returns the index of the service that answered it (from its request log). */
async function helloServedBy(port: number, services: readonly Cli[]): Promise<number> {
  const hello = await RawClient.open(port);
  hello.write('GET /svc/hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  assert.equal((await hello.response()).status, 200);
  // The log line may come through the pipe after the response: wait for it.
  const servedHello = (l: Record<string, unknown>): boolean => l.msg === 'request' && l.path === '/svc/hello';
  return until(() => {
    const i = services.findIndex((s) => s.log.count(servedHello) === 1);
    return i < 0 ? undefined : i;
  }, 'the service that answered /svc/hello logging it');
}

test('a client that disconnects mid-request: only the service holding it gets the disconnect, and its task is aborted', async (t) => {
  const spec = await linkEndpoint();
  const config = writeLinkConf({ sendSpec: spec });
  const gw = await gateway(config, 0);
  t.after(() => gw.cli.stop('SIGKILL'));
  // One thread and one credit each: a held request fills its service.
  const args = ['--workers', '1', '--credit', '1'];
  const services = [await service(spec, args), await service(spec, args)];
  t.after(() => Promise.all(services.map((s) => s.stop('SIGKILL'))));
  await servicesConnected(gw.cli, 2);

  const client = await RawClient.open(gw.port);
  client.write('GET /svc/slow?ms=30000&data=never HTTP/1.1\r\nHost: localhost\r\n\r\n');
  // The holder has no credit left, so /svc/hello goes to the other one, which names the holder.
  const otherIndex = await helloServedBy(gw.port, services);
  assert.ok(otherIndex >= 0);
  const other = services[otherIndex]!;
  const holder = services[1 - otherIndex]!;
  const holderFrom = holder.log.items.length;

  client.destroy();
  // The holder hears of it: it gives its credit back, so it takes work again, and its only
  // thread is free at once (a task still sleeping its 30 s would hold this one behind it).
  const batch = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const c = await RawClient.open(gw.port);
      c.write('GET /svc/hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      return c.response();
    }),
  );
  assert.deepEqual(
    batch.map((r) => r.status),
    [200, 200, 200, 200],
  );
  const byHolder = await holder.waitFor((l) => l.msg === 'request' && l.path === '/svc/hello', 'the holder serving again', holderFrom);
  assert.ok(Number(byHolder.ms) < 1000, `the holder answered in ${String(byHolder.ms)} ms`);
  assert.equal(holder.log.count((l) => String(l.msg).startsWith('aborted task ignored its signal')), 0);

  // Their own counts, as they stop: the holder aborted one request, the other none.
  const [holderExit, otherExit] = await Promise.all([holder.stop('SIGTERM'), other.stop('SIGTERM')]);
  assert.equal(holderExit.code, 0);
  assert.equal(otherExit.code, 0);
  const stats = (s: Cli): Record<string, number> => s.log.items.find((l) => l.msg === 'service stopped')!.stats as Record<string, number>;
  t.diagnostic(`holder stats ${JSON.stringify(stats(holder))}; other stats ${JSON.stringify(stats(other))}`);
  assert.equal(stats(holder).aborted, 1);
  assert.equal(stats(other).aborted, 0);
  assert.equal(holder.log.count((l) => l.msg === 'request' && l.path === '/svc/slow'), 0, 'the slow request was never answered');
});

test('a hung service (SIGSTOP) is dropped on missed heartbeats, its request retried; no credit anywhere → 503 after --link-queue-timeout; resumed, it joins again', async (t) => {
  const spec = await linkEndpoint();
  const config = writeLinkConf({ sendSpec: spec });
  const beat = ['--heartbeat-ms', '100', '--liveness', '3'];
  const gw = await gateway(config, 0, [...beat, '--link-queue-timeout', '300']);
  t.after(() => gw.cli.stop('SIGKILL'));
  const args = ['--workers', '1', '--credit', '1', ...beat];
  const services = [await service(spec, args), await service(spec, args)];
  t.after(() => Promise.all(services.map((s) => s.stop('SIGKILL'))));
  await servicesConnected(gw.cli, 2);

  const client = await RawClient.open(gw.port);
  client.write('GET /svc/slow?ms=1500&data=retried HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const otherIndex = await helloServedBy(gw.port, services);
  const other = services[otherIndex]!;
  const hung = services[1 - otherIndex]!;

  const from = gw.cli.log.items.length;
  const stoppedAt = Date.now();
  hung.child.kill('SIGSTOP');
  t.after(() => hung.child.kill('SIGCONT'));
  const lost = await gw.cli.waitFor(isMsg('handler lost'), 'handler lost', from);
  const detectMs = Number(lost.time) - stoppedAt;
  assert.equal(lost.why, 'heartbeats missed');
  assert.equal(lost.retried, 1);
  // Silence for liveness × interval (300 ms) since it was last heard, noticed at a tick: its last
  // HEARTBEAT may have left up to two intervals before the SIGSTOP (it checks once per interval).
  assert.ok(detectMs >= 100 && detectMs < 1500, `lost ${detectMs} ms after SIGSTOP`);

  // The survivor holds the retried request and has no credit left; nobody else is registered.
  const queued = await RawClient.open(gw.port);
  const queuedAt = Date.now();
  queued.write('GET /svc/hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  const rejected = await queued.response();
  const waited = Date.now() - queuedAt;
  assert.equal(rejected.status, 503);
  assert.equal(rejected.headers['retry-after'], '1');
  assert.ok(waited >= 250, `503 after ${waited} ms, the queue timeout is 300 ms`);

  const retried = await client.response();
  assert.equal(retried.status, 200);
  assert.deepEqual(JSON.parse(retried.body.toString()), { data: 'retried' });
  await other.waitFor((l) => l.msg === 'request' && l.path === '/svc/slow' && l.status === 200, 'the survivor answering the retry');

  const hungFrom = hung.log.items.length;
  const gwFrom = gw.cli.log.items.length;
  hung.child.kill('SIGCONT');
  const noticed = await hung.waitFor(isMsg('lost the gateway'), 'the resumed service noticing', hungFrom);
  await hung.waitFor(isMsg('connected to the gateway'), 'the resumed service registering again', hungFrom);
  await servicesConnected(gw.cli, 2, gwFrom);
  t.diagnostic(`hung service lost ${detectMs} ms after SIGSTOP; queued request 503 after ${waited} ms; once resumed it saw: '${String(noticed.why)}'`);
  // Its own copy of the slow request was abandoned, not answered.
  assert.equal(hung.log.count((l) => l.msg === 'request' && l.path === '/svc/slow'), 0);
});
