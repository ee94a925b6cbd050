// A routes module that cannot be used makes `m2gate service` exit 1 at start,
// with a message naming the module and the cause on stderr, and without
// hanging (piscina would otherwise keep waiting for a thread that cannot load it).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { endpoint, fixtureRoutes, runCli, stopAll, tempDir } from './helpers/service.js';

after(stopAll);

// Nothing is ever bound here: the service must fail before it connects.
const ENDPOINTS = ['--send', endpoint('send'), '--recv', endpoint('recv')];

async function failsToStart(module: string, cause: RegExp): Promise<void> {
  const res = await runCli(['service', module, ...ENDPOINTS, '--workers', '2'], { timeoutMs: 5000 });
  assert.equal(res.code, 1, `exit code; stderr: ${res.stderr}`);
  const lines = res.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${res.stderr}`);
  assert.match(lines[0]!, /^m2gate service: cannot load routes module \S+: /);
  assert.doesNotMatch(lines[0]!, /imported from/, "our own importer's path is no help");
  assert.ok(lines[0]!.includes(module.split('/').pop()!), 'the message names the module');
  assert.match(lines[0]!, cause);
  // The structured log says so too, and the service never connected.
  const log = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: number });
  assert.ok(log.some((l) => l.msg === 'service failed to start' && l.level === 60));
  assert.ok(!log.some((l) => l.msg === 'connected to the front'));
}

test('a routes module with a syntax error', async () => {
  const file = join(tempDir(), 'syntax-error.mjs');
  // Written here rather than kept in fixtures/, where the linter would choke on it.
  writeFileSync(file, "export default { 'GET /x': () => { return 'x' };\n");
  await failsToStart(file, new RegExp(`: SyntaxError at ${file}:1: Unexpected token`));
});

test('a routes module that throws at top level', async () => {
  await failsToStart(fixtureRoutes('throws-at-load.mjs'), /routes module exploded at load/);
});

test('a routes module whose default export is not an object', async () => {
  await failsToStart(fixtureRoutes('default-not-object.mjs'), /must default-export an object of routes/);
});

test('a routes module without a default export', async () => {
  await failsToStart(fixtureRoutes('no-default.mjs'), /must default-export an object of routes/);
});

test('a route that is not a function or { handler }', async () => {
  await failsToStart(fixtureRoutes('bad-route.mjs'), /route 'GET \/bad': expected a function or \{ handler, timeoutMs\? \}/);
});

test("a route key that is not 'METHOD /path'", async () => {
  await failsToStart(fixtureRoutes('bad-pattern.mjs'), /route 'GET no-leading-slash': expected 'METHOD \/path'/);
});

test('a routes module that does not exist', async () => {
  await failsToStart(join(tempDir(), 'missing.mjs'), /Cannot find module|ERR_MODULE_NOT_FOUND|not found/i);
});
