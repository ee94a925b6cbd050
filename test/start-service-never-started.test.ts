// Issue #18, item 3: under `m2gate start`, a service that fails before it ever
// started (its routes module is missing or broken) is a configuration error:
// start exits 1 with the reason and never restarts it, and never says it is
// serving. A service that had run is still restarted with backoff.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMsg, runCli, stopAll, tempDir } from './helpers/service.js';
import { spawnM2gate } from './helpers/gateway.js';
import { freePort } from './helpers/net.js';
import { assertOneLine, writeConf } from './helpers/cli-errors.js';

after(stopAll);

const dir = tempDir();
const conf = writeConf(dir, [{ sendSpec: `tcp://127.0.0.1:${await freePort()}`, recvSpec: `tcp://127.0.0.1:${await freePort()}`, transport: 'link' }]);
const logLines = (stdout: string): Array<Record<string, unknown>> =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

for (const [what, file, reason] of [
  ['missing', join(dir, 'missing.mjs'), /Cannot find module/],
  ['with a SyntaxError', join(dir, 'syntax.mjs'), /SyntaxError at .*syntax\.mjs:2: Unexpected end of input/],
] as const) {
  test(`start --routes (${what}): exit 1 with the reason, no restart, never "serving"`, async () => {
    writeFileSync(join(dir, 'syntax.mjs'), 'export default {\n');
    const res = await runCli(['start', '--config', conf, '--port', '0', '--routes', file, '--services', '2', '--workers', '1'], { timeoutMs: 20_000 });
    assertOneLine(res, 1, new RegExp(`^m2gate: service \\(--routes ${file}\\) failed to start: cannot load routes module ${file}: ${reason.source}`), what);
    const lines = logLines(res.stdout);
    assert.equal(lines.filter((l) => l.msg === 'service process died; restarting').length, 0, 'restarted');
    assert.equal(lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('m2gate is serving')).length, 0, 'said it was serving');
    // One attempt per service process, none after.
    assert.equal(lines.filter((l) => l.msg === 'service failed to start').length, 2);
  });
}

test('a service that had started and then dies is restarted', async () => {
  const start = spawnM2gate(['start', '--config', conf, '--port', '0', '--workers', '1']);
  try {
    await start.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('m2gate is serving'), 'serving');
    const first = await start.waitFor(isMsg('service started'), 'the service');
    process.kill(first.pid as number, 'SIGKILL');
    await start.waitFor(isMsg('service process died; restarting'), 'the restart');
    const second = await start.waitFor((l) => l.msg === 'service started' && l.pid !== first.pid, 'the restarted service');
    assert.notEqual(second.pid, first.pid);
  } finally {
    start.child.kill('SIGTERM');
    await start.exited;
  }
});
