// Issue #18, item 6 (flags): usage errors name the flag the user gave, in one
// line, exit 2: --log-level on every command (pino would throw a stack, exit
// 1), --workers over its cap (the service blamed `credit`, a flag nobody
// gave), a negative number (parseArgs' "ambiguous" advice), an unknown
// option on a command with positionals (a mangled quote). Every command takes --version.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, runCli, stopAll, tempDir } from './helpers/service.js';
import { assertOneLine, writeConf } from './helpers/cli-errors.js';

after(stopAll);

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

test('every command takes --version and -v', async () => {
  for (const command of ['start', 'gateway', 'service', 'keygen']) {
    for (const flag of ['--version', '-v']) {
      const res = await runCli([command, flag]);
      assert.deepEqual([res.code, res.stdout, res.stderr], [0, `${VERSION}\n`, ''], `${command} ${flag}`);
    }
  }
});

test('usage errors name the flag given, one line, exit 2', async () => {
  const conf = writeConf(tempDir(), [{ sendSpec: 'ipc:///tmp/m2gate-usage-s', recvSpec: 'ipc:///tmp/m2gate-usage-r' }]);
  const svc = ['service', '--send', 'ipc:///tmp/m2gate-usage-s', '--recv', 'ipc:///tmp/m2gate-usage-r'];
  const cases: Array<[string[], RegExp]> = [
    [['gateway', '--config', conf, '--log-level', 'bogus'], /--log-level must be one of fatal, error, warn, info, debug, trace, silent \(got 'bogus'\)/],
    [['start', '--config', conf, '--log-level', 'bogus'], /--log-level must be one of .* \(got 'bogus'\)/],
    [['start', '--config', conf, '--workers', '100000'], /--workers must be an integer from 1 to 1024 \(got '100000'\)/],
    [[...svc, '--workers', '100000'], /--workers must be an integer from 1 to 1024 \(got '100000'\)/],
    [[...svc, '--credit', '1000000'], /--credit must be an integer from 1 to 999999/],
    [['start', '--config', conf, '--workers', '-1'], /--workers must be an integer from 1 to 1024 \(got '-1'\)/],
    [[...svc, '--timeout', '-5'], /--timeout must be an integer >= 1 \(got '-5'\)/],
    [['gateway', '--config', conf, '--port', '-1'], /--port must be an integer from 0 to 65535 \(got '-1'\)/],
    [['service', '--bogus'], /^m2gate: Unknown option '--bogus'$/],
    [['gateway', '--workers', '--port'], /Unknown option '--workers'$/],
    [['gateway', '--port', '--config'], /Option '--port' argument is ambiguous \(a value that starts with '-' is written --name=VALUE\)$/],
    // A service does not take the gateway's allow-list (it was listed in its --help and ignored).
    [[...svc, '--curve-allow', 'x'], /Unknown option '--curve-allow'/],
    [['gateway', '--config', conf, '--mongrel2-upload-store', '/tmp/upload.XXXXXX'], /--mongrel2-upload-store needs --mongrel2/],
  ];
  for (const [args, message] of cases) {
    const res = await runCli(args);
    assertOneLine(res, 2, message, args.join(' '));
    assert.equal(res.stdout, '', args.join(' '));
  }
});

test('start --help lists every flag start accepts; service --help none it ignores', async () => {
  const start = (await runCli(['start', '--help'])).stdout;
  for (const flag of ['config', 'server', 'services', 'workers', 'routes', 'max-heap-mb', 'app', 'mongrel2', 'mongrel2-upload-store', 'port', 'handler-timeout', 'drain-timeout', 'headers-timeout', 'request-timeout', 'heartbeat-ms', 'liveness', 'link-queue', 'link-queue-timeout', 'log-level', 'curve-secret', 'curve-allow', 'help', 'version']) {
    assert.match(start, new RegExp(`--${flag}\\b`), `start --help lacks --${flag}`);
  }
  const service = (await runCli(['service', '--help'])).stdout;
  assert.doesNotMatch(service, /--curve-allow/);
  assert.match(service, /--curve-server-key/);
  const gateway = (await runCli(['gateway', '--help'])).stdout;
  assert.doesNotMatch(gateway, /--curve-server-key/);
});
