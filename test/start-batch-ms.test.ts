// `m2gate start --batch-ms` reaches the services it starts (each logs its batchMs), and without
// the flag they keep the service's default (1 ms).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { isMsg, stopAll, tempDir } from './helpers/service.js';
import { spawnM2gate, type LogLine } from './helpers/gateway.js';
import { freePort } from './helpers/net.js';
import { writeConf } from './helpers/cli-errors.js';

after(stopAll);

const dir = tempDir();
const conf = writeConf(dir, [{ sendSpec: `tcp://127.0.0.1:${await freePort()}`, recvSpec: `tcp://127.0.0.1:${await freePort()}`, transport: 'link' }]);

async function startedWith(flags: string[]): Promise<LogLine> {
  const start = spawnM2gate(['start', '--config', conf, '--port', '0', '--workers', '1', '--admin', 'off', ...flags]);
  try {
    return await start.waitFor(isMsg('service started'), 'the service');
  } finally {
    start.child.kill('SIGTERM');
    await start.exited;
  }
}

test('start --batch-ms 0 starts its services with batches off; without it they batch within 1 ms', async () => {
  assert.equal((await startedWith(['--batch-ms', '0'])).batchMs, 0);
  assert.equal((await startedWith(['--batch-ms', '5'])).batchMs, 5);
  assert.equal((await startedWith([])).batchMs, 1);
});

test('M2GATE_BATCH_MS stands in for the flag, and a bad value is a usage error', async () => {
  const start = spawnM2gate(['start', '--config', conf, '--port', '0', '--workers', '1', '--admin', 'off'], { env: { M2GATE_BATCH_MS: '3' } });
  try {
    assert.equal((await start.waitFor(isMsg('service started'), 'the service')).batchMs, 3);
  } finally {
    start.child.kill('SIGTERM');
    await start.exited;
  }
  const bad = spawnM2gate(['start', '--config', conf, '--port', '0', '--batch-ms', '-1']);
  const { code } = await bad.exited;
  assert.equal(code, 2);
  assert.match(bad.stderr(), /--batch-ms/);
});
