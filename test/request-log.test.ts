// Per-request logs: services write none unless asked (--log-requests), and the gateway's access
// log covers every kind of answer (app, Dir, 404, 503, Handler) in the Combined Log Format or as
// NDJSON. The suite runs with M2GATE_LOG_REQUESTS=1 (scripts/run-tests.mjs); these tests set it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { fakeFront, spawnService, stopAll, isMsg, isRequestLog } from './helpers/service.js';
import { confText, handlerConf, logCapture, startGateway, tempTree } from './helpers/gateway.js';
import { combinedLine, fileAccessLog, loggerAccessLog } from '../gateway/access-log.js';

after(stopAll);

test('a service logs no line per request by default, one with --log-requests', async () => {
  for (const [flags, expected] of [[[], 0], [['--log-requests'], 3]] as const) {
    const front = await fakeFront();
    const svc = spawnService(['--send', front.send, '--recv', front.recv, '--workers', '1', ...flags], { env: { M2GATE_LOG_REQUESTS: '' } });
    await svc.ready();
    for (let id = 1; id <= 3; id++) {
      await front.request(id, '/svc/hello');
      assert.equal((await front.next()).ids[0], id);
    }
    // The stop line comes after every request line the service wrote.
    await svc.stop();
    await svc.waitFor(isMsg('service stopped'));
    assert.equal(svc.filter(isRequestLog()).length, expected, `flags ${flags.join(' ') || '(none)'}`);
    front.close();
  }
});

test("the gateway's access log has one Combined Log Format line per answer, of every kind", async () => {
  const dir = tempTree();
  mkdirSync(join(dir, 'www'));
  writeFileSync(join(dir, 'www', 'a.txt'), 'static\n');
  const file = join(dir, 'logs', 'access.log');
  const noService = handlerConf('/none/', 'c0ffee00-0000-4000-8000-000000000001');
  const rig = await startGateway(
    { handlers: [noService], routes: ["'/www/': Dir(base='www/', index_file='index.html', default_ctype='text/plain')"] },
    { dir, accessLog: fileAccessLog(file) },
  );
  const base = `http://127.0.0.1:${rig.port}`;
  const statuses: number[] = [];
  for (const path of ['/www/a.txt', '/nowhere', '/none/x']) {
    const res = await request(`${base}${path}`, { headers: { 'user-agent': 'test "agent"', referer: 'http://example.test/' } });
    await res.body.dump();
    statuses.push(res.statusCode);
  }
  assert.deepEqual(statuses, [200, 404, 503]);
  await rig.close(); // closes (flushes) the log
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 3);
  const clf = /^127\.0\.0\.1 - - \[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET (\S+) HTTP\/1\.1" (\d{3}) (\d+|-) "http:\/\/example\.test\/" "test \\"agent\\"" (\w+) \d+\.\d{3}$/;
  const parsed = lines.map((l) => clf.exec(l));
  assert.ok(parsed.every(Boolean), lines.join('\n'));
  assert.deepEqual(parsed.map((m) => [m![1], Number(m![2]), m![4]]), [['/www/a.txt', 200, 'dir'], ['/nowhere', 404, 'none'], ['/none/x', 503, 'handler']]);
});

test('access log lines cannot be forged by control bytes in headers, and NDJSON lines carry the kind', async () => {
  const fake = {
    req: { method: 'GET', url: '/x', httpVersion: '1.1', socket: { remoteAddress: '127.0.0.1' }, headers: { 'user-agent': 'a\nb\r"c\\' } },
    res: { statusCode: 200, getHeader: () => 5 },
    ms: 1.5,
    kind: 'app',
  };
  const line = combinedLine(fake as never, new Date(Date.UTC(2026, 11, 2, 3, 4, 5)));
  assert.equal(line, '127.0.0.1 - - [02/Dec/2026:03:04:05 +0000] "GET /x HTTP/1.1" 200 5 "-" "ab\\"c\\\\" app 1.500\n');
  const cap = logCapture();
  loggerAccessLog(cap.logger).write(fake as never);
  const logged = await cap.waitFor((l) => l.msg === 'request', 'request line');
  assert.deepEqual([logged.kind, logged.status, logged.path], ['app', 200, '/x']);
});

test('an access log to a file the gateway cannot create is a clear startup error', async () => {
  const dir = tempTree({ 'mongrel2.conf': confText({ routes: [] }), blocker: 'a file, not a folder' });
  const { runCli } = await import('./helpers/service.js');
  const out = await runCli(['gateway', '--config', join(dir, 'mongrel2.conf'), '--port', '0', '--access-log', join(dir, 'blocker', 'access.log')]);
  assert.equal(out.code, 1);
  assert.match(out.stderr, /^m2gate: --access-log .*blocker\/access\.log: cannot open .*: (ENOTDIR|EEXIST)/m);
  assert.doesNotMatch(out.stderr, /^\s+at /m);
});
