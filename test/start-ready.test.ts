// Issue #13: "m2gate start, then at once curl /app/hello (200) and curl /service/sync → 503 for
// about a second, every time, because the gateway listens before its own supervised services
// have registered." Driven as a new user does it: `m2gate start` from dist/ (`npm run build`
// first) on a temp config — a link Handler for /svc/ on ipc:// endpoints, a Dir at /, the demo
// app — and the first request to each kind of route sent the moment the log says
// 'gateway listening' (before any service is up). Then the one service is SIGKILLed and the
// next Handler request must wait for its replacement rather than get 503. Outside `start`
// (a gateway alone, no service coming) a Handler request still gets 503 at once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { get, tempTree, type RawResponse } from './helpers/gateway.js';
import { DEMO_APP } from './helpers/load.js';
import { ROOT } from './helpers/service.js';
import { isMsg, killAll, spawnCli, type LogLine } from './helpers/link.js';

after(killAll);

const isGateway = (l: LogLine): boolean => l.component === 'gateway';
const isService = (l: LogLine): boolean => l.component === 'service';

/** A config dir: /svc/ a link Handler on ipc://, / a Dir holding the shipped index.html. */
function stackConf(): { file: string; index: string } {
  const dir = tempTree({}, 'm2gate-ready-');
  mkdirSync(join(dir, 'www'));
  copyFileSync(join(ROOT, 'public', 'index.html'), join(dir, 'www', 'index.html'));
  const ipc = (name: string): string => `ipc://${join(dir, name)}`;
  const file = join(dir, 'mongrel2.conf');
  writeFileSync(
    file,
    `svc = Handler(send_spec='${ipc('link')}', send_ident='5ead0000-0000-4000-8000-0000000ready', recv_spec='${ipc('unused')}', recv_ident='', protocol='json', transport='link')
www = Dir(base='www/', index_file='index.html', default_ctype='text/plain')
main = Server(uuid="5ead0000-0000-4000-8000-000000server", name="ready", port=6767, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid", default_host="localhost",
  hosts=[Host(name="localhost", routes={ '/': www, '/svc/': svc })])
settings = { "server.daemonize": 0 }
servers = [main]
`,
  );
  return { file, index: readFileSync(join(dir, 'www', 'index.html'), 'utf8') };
}

function summary(r: RawResponse): string {
  return `${r.status} ${r.body.toString('utf8').slice(0, 200)}`;
}

test('m2gate start: the first request to each kind of route, sent as soon as it listens, is 200 — none 503; after a SIGKILL the next Handler request waits for the restarted service', async (t) => {
  const { file, index } = stackConf();
  const m2 = spawnCli(['start', '--config', file, '--port', '0', '--app', DEMO_APP, '--services', '1', '--workers', '1'], { M2GATE_ADMIN: 'off' });
  t.after(() => m2.stop('SIGKILL'));
  const listening = await m2.waitFor((l) => isGateway(l) && l.msg === 'gateway listening', 'gateway listening');
  const port = Number(listening.port);
  // Nothing has registered yet: these requests come "too early", as the user's curl did.
  const sentAt = m2.log.items.length;
  assert.equal(m2.log.count((l) => l.msg === 'handler connected'), 0, 'a service registered before the gateway listened');

  const [app, sync, svc, dir] = await Promise.all([get(port, '/app/hello'), get(port, '/service/sync?ms=1&data=early'), get(port, '/svc/hello'), get(port, '/')]);
  assert.equal(app.status, 200, summary(app));
  assert.equal(app.body.toString(), 'hello from the gateway\n');
  assert.equal(sync.status, 200, summary(sync));
  assert.deepEqual(JSON.parse(sync.body.toString()), { data: 'early', via: 'ctx.call' });
  assert.equal(svc.status, 200, summary(svc));
  assert.equal(svc.body.toString(), 'hello');
  assert.equal(dir.status, 200, summary(dir));
  assert.equal(dir.body.toString(), index);
  // The Handler requests were answered by the service that registered after they were sent.
  await m2.waitFor((l) => isGateway(l) && l.msg === 'handler connected', 'handler connected', sentAt);
  await m2.waitFor((l) => String(l.msg).startsWith('m2gate is serving'), 'm2gate is serving');

  // A supervised restart: the service dies, a request comes at once, the supervisor restarts it.
  const first = await m2.waitFor((l) => isService(l) && l.msg === 'connected to the gateway', "the service's pid");
  const victim = Number(first.pid);
  const from = m2.log.items.length;
  process.kill(victim, 'SIGKILL');
  const t0 = performance.now();
  // One request at once (it may still reach the gateway before it has noticed the loss), and
  // one the moment the gateway says the service is lost: no service then, the new one not
  // registered yet, so only the hold stands between it and a 503.
  const atOnce = get(port, '/svc/hello');
  await m2.waitFor((l) => isGateway(l) && l.msg === 'handler lost', 'handler lost', from);
  const afterLoss = get(port, '/svc/hello');
  const [again, again2] = await Promise.all([atOnce, afterLoss]);
  const waitedMs = performance.now() - t0;
  assert.equal(again.status, 200, summary(again));
  assert.equal(again.body.toString(), 'hello');
  assert.equal(again2.status, 200, summary(again2));
  assert.equal(again2.body.toString(), 'hello');
  const reborn = await m2.waitFor((l) => isService(l) && l.msg === 'connected to the gateway', 'the restarted service', from);
  assert.notEqual(Number(reborn.pid), victim);
  await m2.waitFor(isMsg('service process died; restarting'), "the supervisor's line", from);
  t.diagnostic(`the requests after the kill were answered ${waitedMs.toFixed(0)} ms after it, by the restarted service`);
  // Bounded: the supervisor's first backoff is 100 ms and a service starts in about a second.
  assert.ok(waitedMs < 5000, `answered ${waitedMs.toFixed(0)} ms after the kill`);

  const exit = await m2.stop('SIGTERM');
  assert.equal(exit.code, 0, m2.stderr());
});

test('outside m2gate start nothing holds: a gateway alone, a link Handler with no service, answers 503 at once', async (t) => {
  const { file } = stackConf();
  const gw = spawnCli(['gateway', '--config', file, '--port', '0', '--app', DEMO_APP]);
  t.after(() => gw.stop('SIGKILL'));
  const listening = await gw.waitFor((l) => isGateway(l) && l.msg === 'gateway listening', 'gateway listening');
  const port = Number(listening.port);
  const t0 = performance.now();
  const [svc, sync] = await Promise.all([get(port, '/svc/hello'), get(port, '/service/sync?ms=1')]);
  const ms = performance.now() - t0;
  assert.equal(svc.status, 503, summary(svc));
  assert.equal(svc.headers['retry-after'], '1');
  assert.equal(sync.status, 503, summary(sync));
  // "At once": far below any hold (start holds for 10 s).
  assert.ok(ms < 2000, `answered after ${ms.toFixed(0)} ms`);
  const exit = await gw.stop('SIGTERM');
  assert.equal(exit.code, 0, gw.stderr());
});
