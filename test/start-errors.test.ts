// Issue #18, item 2: a gateway (or `start`) that cannot start exits at once by
// itself (usage errors 2, runtime failures 1), prints one line naming what
// failed (the flag, the address, the config line) without a stack, and
// releases every socket it had bound: the Handler ports bound before the
// failure can be bound again right after the exit.
import { test, after } from 'node:test';
import { freePort } from './helpers/net.js';
import { runCli, stopAll, tempDir } from './helpers/service.js';
import { assertOneLine, assertReleased, holdPort, writeConf } from './helpers/cli-errors.js';

after(stopAll);

const EXIT_MS = 10_000;
const tcp = (port: number): string => `tcp://127.0.0.1:${port}`;

/** A PUSH/SUB Handler on two free ports, which the gateway binds before it fails. */
async function freeHandler(): Promise<{ sendSpec: string; recvSpec: string; ports: number[] }> {
  const [s, r] = [await freePort(), await freePort()];
  return { sendSpec: tcp(s), recvSpec: tcp(r), ports: [s, r] };
}

for (const command of ['gateway', 'start'] as const) {
  test(`${command}: HTTP port in use → exit 1 naming the address; the Handler ports are released`, async () => {
    const held = await holdPort();
    const h = await freeHandler();
    const conf = writeConf(tempDir(), [h]);
    const extra = command === 'start' ? ['--services', '1', '--workers', '1'] : [];
    const res = await runCli([command, '--config', conf, '--port', String(held.port), ...extra], { timeoutMs: EXIT_MS });
    await held.close();
    assertOneLine(res, 1, new RegExp(`HTTP address 127\\.0\\.0\\.1:${held.port} \\(from --port\\): address already in use$`), command);
    for (const port of h.ports) await assertReleased(port, command);
  });
}

test('a link Handler port in use → exit 1 naming the config line and the spec; the ports bound before are released', async () => {
  const held = await holdPort();
  const h = await freeHandler();
  const conf = writeConf(tempDir(), [h, { sendSpec: tcp(held.port), recvSpec: tcp(await freePort()), transport: 'link' }]);
  const res = await runCli(['gateway', '--config', conf, '--port', '0'], { timeoutMs: EXIT_MS });
  await held.close();
  assertOneLine(res, 1, new RegExp(`^m2gate: ${conf}:2: Handler send_spec 'tcp://127\\.0\\.0\\.1:${held.port}': Address already in use$`), 'link port');
  for (const port of h.ports) await assertReleased(port, 'link port');
});

test("send_spec='garbage' → exit 1 naming the spec and its config line", async () => {
  const h = await freeHandler();
  const conf = writeConf(tempDir(), [h, { sendSpec: 'garbage', recvSpec: tcp(await freePort()) }]);
  const res = await runCli(['gateway', '--config', conf, '--port', '0'], { timeoutMs: EXIT_MS });
  assertOneLine(res, 1, new RegExp(`^m2gate: ${conf}:2: Handler send_spec 'garbage': Invalid argument$`), 'garbage');
  for (const port of h.ports) await assertReleased(port, 'garbage');
});

test('start --mongrel2 a,b → exit 1 naming --mongrel2 and the spec; the Handler ports are released', async () => {
  const h = await freeHandler();
  const conf = writeConf(tempDir(), [h]);
  const res = await runCli(['start', '--config', conf, '--mongrel2', 'a,b', '--workers', '1'], { timeoutMs: EXIT_MS });
  assertOneLine(res, 1, /^m2gate: --mongrel2 (SEND|RECV)_SPEC '[ab]': Invalid argument$/, '--mongrel2 a,b');
  for (const port of h.ports) await assertReleased(port, '--mongrel2');
});

test('--port 70000 → usage error (exit 2) naming --port', async () => {
  const conf = writeConf(tempDir(), [await freeHandler()]);
  for (const command of ['gateway', 'start']) {
    const res = await runCli([command, '--config', conf, '--port', '70000'], { timeoutMs: EXIT_MS });
    assertOneLine(res, 2, /--port must be an integer from 0 to 65535 \(got '70000'\)/, command);
  }
});

test('gateway --curve-secret without --curve-allow → usage error (exit 2) naming --curve-allow', async () => {
  const dir = tempDir();
  const keygen = await runCli(['keygen', '--out', `${dir}/gw`]);
  if (keygen.code !== 0) throw new Error(keygen.stderr);
  const conf = writeConf(dir, [{ ...(await freeHandler()), transport: 'link' }]);
  const res = await runCli(['gateway', '--config', conf, '--port', '0', '--curve-secret', `${dir}/gw.key`], { timeoutMs: EXIT_MS });
  assertOneLine(res, 2, /--curve-secret needs --curve-allow/, 'curve');
});
