// Issue #18, item 6 (modules): a missing or broken --config, --app or routes
// module is named in one line without a stack, exit 1; a SyntaxError says
// file:line; an --app module without a default export is rejected (as
// `m2gate service` rejects such a routes module).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, stopAll, tempDir } from './helpers/service.js';
import { assertOneLine, writeConf } from './helpers/cli-errors.js';

after(stopAll);

const dir = tempDir();
const conf = writeConf(dir, [{ sendSpec: `ipc://${dir}/s`, recvSpec: `ipc://${dir}/r` }]);
const write = (name: string, text: string): string => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};
const syntax = write('syntax.mjs', "export default {\n  'GET /x': () => 1,\n  oops oops\n};\n");
const noDefault = write('no-default.mjs', "export const app = { 'GET /x': () => 'x' };\n");
const throws = write('throws.mjs', "const x = 1;\nthrow new Error('boom at load');\n");
const badRoute = write('bad-route.mjs', "export default { 'GET /x': 42 };\n");
const cjsApp = (() => {
  // What `npm init -y` writes these days: an explicit CommonJS package.
  const sub = tempDir();
  writeFileSync(join(sub, 'package.json'), '{ "type": "commonjs" }');
  writeFileSync(join(sub, 'app.js'), "import { defineApp } from 'm2gate';\nexport default defineApp({});\n");
  return join(sub, 'app.js');
})();

const gw = (...args: string[]): string[] => ['gateway', '--config', conf, '--port', '0', ...args];

test('--config that does not exist', async () => {
  const res = await runCli(['gateway', '--config', join(dir, 'missing.conf')]);
  assertOneLine(res, 1, new RegExp(`^m2gate: --config ${join(dir, 'missing.conf')}: no such file$`), 'missing config');
});

test('--app modules that do not load, or load without a valid default export', async () => {
  const cases: Array<[string, RegExp]> = [
    [join(dir, 'missing.mjs'), /--app .*missing\.mjs: Cannot find module '.*missing\.mjs'$/],
    [syntax, new RegExp(`--app .*syntax\\.mjs: SyntaxError at ${syntax}:3: Unexpected identifier 'oops'$`)],
    [noDefault, /--app .*no-default\.mjs: the app module must default-export an object of routes/],
    [throws, new RegExp(`--app .*throws\\.mjs: boom at load \\(at ${throws}:2:7\\)$`)],
    [badRoute, /--app .*bad-route\.mjs: app route 'GET \/x': expected a function or \{ handler, timeoutMs\? \}$/],
    [cjsApp, /SyntaxError at .*app\.js:1: Cannot use import statement outside a module \(routes and app modules are ES modules: name the file \.mjs, or set "type": "module"/],
  ];
  for (const [file, message] of cases) {
    const res = await runCli(gw('--app', file));
    assertOneLine(res, 1, message, file);
  }
});

test('a routes module with a SyntaxError: m2gate service says file:line', async () => {
  const res = await runCli(['service', syntax, '--send', `ipc://${dir}/s`, '--recv', `ipc://${dir}/r`, '--workers', '1']);
  assert.equal(res.code, 1, res.stderr);
  assert.doesNotMatch(res.stderr, /\n\s+at /);
  assert.match(res.stderr, new RegExp(`^m2gate service: cannot load routes module ${syntax}: SyntaxError at ${syntax}:3: Unexpected identifier 'oops'\\n$`));
});
