// The Brubeck flags of `m2gate service` and `m2gate gateway`: usage errors exit 2 and say
// what is wrong; the passphrase comes from a file or M2GATE_BRUBECK_PASSPHRASE, never a flag.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, stopAll } from './helpers/service.js';
import { passphraseFile } from './helpers/brubeck.js';

after(stopAll);
const file = passphraseFile('cli-secret');

test('--help of both commands lists the Brubeck flags and their environment variables', async () => {
  const service = await runCli(['service', '--help']);
  assert.equal(service.code, 0);
  assert.match(service.stdout, /--brubeck ADDR,RESP_ADDR/);
  assert.match(service.stdout, /--passphrase-file F/);
  assert.match(service.stdout, /M2GATE_BRUBECK_PASSPHRASE/);
  const gateway = await runCli(['gateway', '--help']);
  assert.equal(gateway.code, 0);
  assert.match(gateway.stdout, /--brubeck-service NAME=ADDR,RESP_ADDR/);
  assert.match(gateway.stdout, /--brubeck-passphrase-file F/);
});

test('usage errors exit 2 with the reason', async () => {
  const cases: Array<[string[], RegExp, Record<string, string>?]> = [
    [['service', '--brubeck', 'ipc:///tmp/x,ipc:///tmp/y'], /needs its passphrase: --passphrase-file FILE or M2GATE_BRUBECK_PASSPHRASE/],
    [['service', '--brubeck', 'ipc:///tmp/x'], /--brubeck takes ADDR,RESP_ADDR/],
    [['service', '--brubeck', 'ipc:///tmp/x,ipc:///tmp/y', '--passphrase-file', file, '--send', 'ipc:///tmp/s', '--recv', 'ipc:///tmp/r'], /cannot be combined/],
    [['service', '--brubeck', 'ipc:///tmp/x,ipc:///tmp/y', '--passphrase-file', '/nonexistent/pass'], /cannot read the Brubeck passphrase file \/nonexistent\/pass: ENOENT/],
    [['service', '--brubeck', 'ipc:///tmp/x,ipc:///tmp/y'], /white space/, { M2GATE_BRUBECK_PASSPHRASE: 'two words' }],
    [['gateway', '--brubeck-service', 'ipc:///tmp/x,ipc:///tmp/y', '--brubeck-passphrase-file', file], /--brubeck-service takes NAME=ADDR,RESP_ADDR/],
    [['gateway', '--brubeck-service', 'slow=ipc:///tmp/x', '--brubeck-passphrase-file', file], /--brubeck-service takes NAME=ADDR,RESP_ADDR/],
    [['gateway', '--brubeck-service', 'slow=ipc:///tmp/x,ipc:///tmp/y,0.2'], /--brubeck-service takes/, { M2GATE_BRUBECK_PASSPHRASE: 'p' }],
    [['gateway', '--brubeck-service', 'slow=ipc:///tmp/x,ipc:///tmp/y'], /needs its passphrase: --brubeck-passphrase-file FILE/],
  ];
  const results = await Promise.all(cases.map(([args, , env]) => runCli(args, env ? { env } : {})));
  results.forEach((r, i) => {
    assert.equal(r.code, 2, `${cases[i]![0].join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, cases[i]![1]);
    assert.ok(!r.stderr.includes('cli-secret'));
  });
});

test('an invalid endpoint makes the service exit 1 at start with the reason', async () => {
  const r = await runCli(['service', '--brubeck', 'bogus://x,ipc:///tmp/y', '--passphrase-file', file, '--workers', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid endpoint 'bogus:\/\/x'/);
});
