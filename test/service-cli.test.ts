// `m2gate` and `m2gate service` on the command line: --help and --version on
// stdout with exit 0, usage errors on stderr with exit 2, and every flag also
// read from its M2GATE_* environment variable (the flag wins).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  fakeFront,
  fixtureRoutes,
  isMsg,
  parseHttp,
  ROOT,
  runCli,
  spawnService,
  startService,
  stopAll,
  gate,
  type FakeFront,
} from './helpers/service.js';

after(stopAll);

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const PROBES = fixtureRoutes('probes.mjs');

test('m2gate --help, -h and no command print usage on stdout, exit 0', async () => {
  const argsList = [['--help'], ['-h'], []];
  const results = await Promise.all(argsList.map((args) => runCli(args)));
  for (const [i, args] of argsList.entries()) {
    const res = results[i]!;
    assert.equal(res.code, 0, args.join(' '));
    assert.match(res.stdout, /^Usage: m2gate <command>/);
    assert.match(res.stdout, /service \[ROUTES_MODULE\]/);
    assert.equal(res.stderr, '');
  }
});

test('m2gate service --help lists every option with its environment variable, exit 0', async () => {
  const res = await runCli(['service', '--help']);
  assert.equal(res.code, 0);
  assert.equal(res.stderr, '');
  assert.match(res.stdout, /^Usage: m2gate service \[ROUTES_MODULE\] --send SPEC --recv SPEC/);
  for (const flag of ['send', 'recv', 'workers', 'sender-id', 'protocol', 'timeout', 'max-queue', 'drain-timeout', 'log-level']) {
    const env = `M2GATE_${flag.toUpperCase().replaceAll('-', '_')}`;
    assert.match(res.stdout, new RegExp(`--${flag} .*${env}`, 's'), flag);
  }
});

test('m2gate --version and -v print the package version', async () => {
  for (const flag of ['--version', '-v']) {
    const res = await runCli([flag]);
    assert.deepEqual([res.code, res.stdout, res.stderr], [0, `${VERSION}\n`, '']);
  }
});

test('usage errors: message on stderr, nothing on stdout, exit 2', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['bogus'], /unknown command 'bogus'/],
    [['service'], /--send and --recv are required/],
    [['service', '--send', 'ipc:///tmp/x'], /--send and --recv are required/],
    [['service', '--send', 'a', '--recv', 'b', '--workers', '0'], /--workers must be an integer from 1 to 1024 \(got '0'\)/],
    [['service', '--send', 'a', '--recv', 'b', '--workers', 'two'], /--workers must be an integer from 1 to 1024 \(got 'two'\)/],
    [['service', '--send', 'a', '--recv', 'b', '--timeout', '0'], /--timeout must be an integer >= 1/],
    [['service', '--send', 'a', '--recv', 'b', '--max-queue=-1'], /--max-queue must be an integer >= 0/],
    [['service', '--send', 'a', '--recv', 'b', '--protocol', 'xml'], /--protocol must be json or tnetstring \(got 'xml'\)/],
    [['service', '--send', 'a', '--recv', 'b', '--bogus'], /Unknown option '--bogus'/],
    [['service', 'a.mjs', 'b.mjs', '--send', 'a', '--recv', 'b'], /at most one ROUTES_MODULE/],
    [['service', '--send', 'a', '--recv', 'b', '--log-level', 'loud'], /--log-level must be one of fatal, error, warn, info, debug, trace, silent \(got 'loud'\)/],
  ];
  const results = await Promise.all(cases.map(([args]) => runCli(args)));
  for (const [i, [args, message]] of cases.entries()) {
    const res = results[i]!;
    assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
    assert.equal(res.stdout, '', args.join(' '));
    assert.match(res.stderr, /^m2gate: /);
    assert.match(res.stderr, message);
    assert.match(res.stderr, /Run 'm2gate --help' for usage\.\n$/);
  }
});

test('bad values from the environment are usage errors too', async () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ M2GATE_WORKERS: 'abc' }, /--workers must be an integer from 1 to 1024 \(got 'abc'\)/],
    [{ M2GATE_PROTOCOL: 'xml' }, /--protocol must be json or tnetstring/],
    [{ M2GATE_TIMEOUT: '-5' }, /--timeout must be an integer >= 1/],
    [{ M2GATE_LOG_LEVEL: 'chatty' }, /--log-level must be one of/],
  ];
  const results = await Promise.all(cases.map(([env]) => runCli(['service', '--send', 'a', '--recv', 'b'], { env })));
  for (const [i, [env, message]] of cases.entries()) {
    const res = results[i]!;
    assert.equal(res.code, 2, JSON.stringify(env));
    assert.match(res.stderr, message);
  }
});

async function meetAll(front: FakeFront, n: number, firstConnId: number): Promise<Set<number>> {
  for (let i = 0; i < n; i++) await front.request(firstConnId + i, '/t/meet', { query: `n=${n}&tag=env-${firstConnId}` });
  const threads = new Set<number>();
  for (let i = 0; i < n; i++) {
    const res = parseHttp((await front.next()).body);
    assert.equal(res.status, 200, res.body);
    threads.add((JSON.parse(res.body) as { thread: number }).thread);
  }
  return threads;
}

test('M2GATE_SEND, M2GATE_RECV, M2GATE_WORKERS, M2GATE_SENDER_ID and M2GATE_TIMEOUT stand in for the flags', async () => {
  const front = await fakeFront();
  const svc = await startService([PROBES], {
    env: { M2GATE_SEND: front.send, M2GATE_RECV: front.recv, M2GATE_WORKERS: '3', M2GATE_SENDER_ID: 'from-env', M2GATE_TIMEOUT: '150' },
  });
  const started = await svc.waitFor(isMsg('service started'));
  assert.equal(started.workers, 3);
  assert.equal(started.senderId, 'from-env');
  // Three requests that only finish together: three threads.
  assert.equal((await meetAll(front, 3, 1)).size, 3);
  // The timeout: a held request is cut at 150 ms.
  await front.request(10, '/t/hold', { query: gate().query('env-timeout') });
  const timedOut = await front.next();
  assert.equal(parseHttp(timedOut.body).status, 504);
});

test('a flag wins over its environment variable', async () => {
  const front = await fakeFront();
  const svc = await startService([PROBES, '--workers', '1', '--send', front.send, '--recv', front.recv], {
    env: { M2GATE_WORKERS: '3', M2GATE_SEND: 'ipc:///nonexistent/send', M2GATE_RECV: 'ipc:///nonexistent/recv' },
  });
  const started = await svc.waitFor(isMsg('service started'));
  assert.equal(started.workers, 1);
  await front.request(1, '/t/hello');
  assert.equal(parseHttp((await front.next()).body).body, 'hello');
});

test('M2GATE_LOG_LEVEL=warn silences the per-request info lines', async () => {
  const front = await fakeFront();
  const svc = spawnService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1'], { env: { M2GATE_LOG_LEVEL: 'warn' } });
  await front.request(1, '/t/hello');
  assert.equal(parseHttp((await front.next()).body).body, 'hello');
  // A warning still shows: a malformed message.
  await front.push(Buffer.from('garbage'));
  await svc.waitFor(isMsg('malformed message skipped'));
  assert.equal((await svc.stop()).code, 0);
  assert.ok(svc.lines.length > 0);
  assert.ok(svc.lines.every((l) => (l.level as number) >= 40), 'an info line was logged at level warn');
});

test('an endpoint zeromq rejects fails the start with exit 1 and names it, without hanging', async () => {
  const front = await fakeFront();
  const cases: Array<[string[], RegExp]> = [
    [['--send', 'a', '--recv', 'b'], /invalid endpoint 'a': Invalid argument/],
    [['--send', front.send, '--recv', 'TCP://127.0.0.1:1'], /invalid endpoint 'TCP:\/\/127\.0\.0\.1:1': Protocol not supported/],
    // The front is up, so the reply path connects first and the PULL would connect in a callback.
    [['--send', 'tcp://127.0.0.1', '--recv', front.recv], /invalid endpoint 'tcp:\/\/127\.0\.0\.1': Invalid argument/],
  ];
  const results = await Promise.all(cases.map(([args]) => runCli(['service', PROBES, ...args, '--workers', '1'], { timeoutMs: 5000 })));
  for (const [i, [args, message]] of cases.entries()) {
    const res = results[i]!;
    assert.equal(res.code, 1, `${args.join(' ')}: ${res.stderr}`);
    assert.match(res.stderr, /^m2gate service: /);
    assert.match(res.stderr, message);
  }
});
