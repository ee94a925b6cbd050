import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  ConfigError, MAX_NESTING_DEPTH, findServer, parseConfig, settingInt,
  type ConfigDir, type ConfigHandler, type ConfigProxy, type Mongrel2Config,
} from '../protocol/mongrel2-conf.js';
import { M2gateError } from '../protocol/errors.js';
import { FIXTURES_DIR } from './helpers/fixtures.js';

const EXAMPLES_DIR = '/usr/share/doc/mongrel2-core/examples';

const HANDLER = "Handler(send_spec='tcp://127.0.0.1:1', send_ident='abc', recv_spec='tcp://127.0.0.1:2', recv_ident='')";
/** A valid config; `routes` is the text of the routes dict, `extra` goes after the Server. */
function conf(routes = `{'/h': ${HANDLER}}`, extra = '', serverExtra = ''): string {
  return `main = Server(uuid="u1", access_log="a.log", error_log="e.log", pid_file="p.pid",
  default_host="localhost", name="n", port=6767${serverExtra},
  hosts=[Host(name="localhost", routes=${routes})])
servers = [main]
${extra}`;
}

function fails(text: string, line: number, column: number, re: RegExp): ConfigError {
  let caught: unknown;
  try {
    parseConfig(text);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError for ${JSON.stringify(text.slice(0, 80))}, got ${String(caught)}`);
  assert.equal(caught.code, 'M2G_ERR_CONFIG');
  assert.match(caught.message, re);
  assert.deepEqual([caught.line, caught.column], [line, column], caught.message);
  assert.ok(caught.message.startsWith(`mongrel2.conf:${line}:${column}: `), caught.message);
  return caught;
}

/** [line, column] of the first `needle` in `text` (1-based), to state expected error positions. */
function pos(text: string, needle: string): [number, number] {
  const i = text.indexOf(needle);
  assert.ok(i >= 0, `${needle} not in text`);
  const before = text.slice(0, i).split('\n');
  return [before.length, (before.at(-1)?.length ?? 0) + 1];
}
function failsAt(text: string, needle: string, re: RegExp): ConfigError {
  return fails(text, ...pos(text, needle), re);
}

const routeTargets = (c: Mongrel2Config) => c.servers[0]?.hosts[0]?.routes.map((r) => r.target) ?? [];
const firstTarget = (c: Mongrel2Config) => routeTargets(c)[0];

// ---- fixtures ----------------------------------------------------------------------------------

function fixtureConfig(name: string): Mongrel2Config {
  return parseConfig(readFileSync(join(FIXTURES_DIR, name), 'utf8'), name);
}

for (const [file, n, sendPort, sendIdent, protocol] of [
  ['capture-json.conf', 1, 26997, '54c6755b-9628-40a4-9a2d-cc82a816345e', 'json'],
  ['capture-tnet.conf', 2, 26987, '8b3c1f0e-5d2a-4c7b-9e61-a0f4d2c3b5e7', 'tnetstring'],
] as const) {
  test(`fixture ${file} has the captured server, routes and settings (§11.6)`, () => {
    const c = fixtureConfig(file);
    assert.equal(c.servers.length, 1);
    const { hosts, ...server } = c.servers[0] ?? assert.fail('no server');
    assert.deepEqual(server, {
      uuid: `0a7f3a42-0b1e-4a5e-9d51-3d6c2b4f2c0${n}`, name: file.replace('.conf', ''), port: 26766 + n,
      bindAddr: '0.0.0.0', defaultHost: 'localhost', accessLog: 'logs/access.log', errorLog: 'logs/error.log',
      pidFile: 'run/mongrel2.pid', chroot: '', controlPort: '', useSsl: false,
    });
    assert.equal(hosts.length, 1);
    assert.equal(hosts[0]?.name, 'localhost');
    assert.equal(hosts[0]?.matching, 'localhost');
    assert.deepEqual(hosts[0]?.routes.map((r) => r.path), ['/handler', '/static/', '/proxy/']);
    assert.deepEqual(routeTargets(c), [
      { kind: 'handler', sendSpec: `tcp://127.0.0.1:${sendPort}`, sendIdent, recvSpec: `tcp://127.0.0.1:${sendPort - 1}`,
        recvIdent: '', protocol, rawPayload: false, transport: 'mongrel2' },
      { kind: 'dir', base: 'static/', indexFile: 'index.html', defaultCtype: 'text/plain', cacheTtl: 0 },
      { kind: 'proxy', addr: '127.0.0.1', port: 26800 },
    ]);
    assert.deepEqual({ ...c.settings }, {
      'server.daemonize': '0', 'limits.content_length': '1024', 'upload.temp_store': 'tmp/upload.XXXXXX',
    });
    assert.equal(settingInt(c, 'limits.content_length', 20480), 1024);
    assert.deepEqual({ ...c.mimetypes }, {});
    assert.deepEqual(c.warnings, []);
  });
}

test('fixture capture-extras.conf: two handlers, JSON socket route shares the /json Handler', () => {
  const c = fixtureConfig('capture-extras.conf');
  const server = findServer(c, '0a7f3a42-0b1e-4a5e-9d51-3d6c2b4f2c03');
  assert.equal(server.name, 'capture-extras');
  assert.equal(server.port, 26771);
  const routes = server.hosts[0]?.routes ?? [];
  assert.deepEqual(routes.map((r) => r.path), ['/json', '/tnet', '@chat']);
  const [json, tnet, chat] = routes.map((r) => r.target as ConfigHandler);
  assert.equal(json?.protocol, 'json');
  assert.equal(json?.sendIdent, 'c0ffee00-0000-4000-8000-00000000000a');
  assert.equal(json?.sendSpec, 'tcp://127.0.0.1:26967');
  assert.equal(tnet?.protocol, 'tnetstring');
  assert.equal(tnet?.sendIdent, 'c0ffee00-0000-4000-8000-00000000000b');
  assert.equal(tnet?.recvSpec, 'tcp://127.0.0.1:26964');
  assert.equal(chat, json, 'one Handler variable is one object');
  assert.notEqual(tnet, json);
  assert.deepEqual({ ...c.settings }, { 'server.daemonize': '0', 'download.flow_control': '1' });
  assert.equal(settingInt(c, 'download.flow_control', 0), 1);
});

// ---- Debian's example configs --------------------------------------------------------------------

function exampleFiles(): Map<string, string> {
  if (!existsSync(EXAMPLES_DIR)) {
    assert.fail(`${EXAMPLES_DIR} is missing: install the Debian package mongrel2-core (apt-get install mongrel2-core)`);
  }
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.conf(\.gz)?$/.test(name)) {
        const raw = readFileSync(path);
        out.set(path.slice(EXAMPLES_DIR.length + 1).replace(/\.gz$/, ''), (name.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8'));
      }
    }
  };
  walk(EXAMPLES_DIR);
  return out;
}

test('every example config shipped by mongrel2-core parses', () => {
  const files = exampleFiles();
  assert.ok(files.size >= 5, `only ${files.size} example configs found in ${EXAMPLES_DIR}`);
  for (const [name, text] of files) {
    const c = parseConfig(text, name);
    assert.ok(c.servers.length >= 1, `${name}: no servers`);
    for (const s of c.servers) assert.ok(s.hosts.length >= 1, `${name}: server ${s.uuid} has no hosts`);
  }
});

test('examples: complex.conf shares one routes dict between two hosts; mongrel2.conf keeps backslashes', () => {
  const files = exampleFiles();
  const complex = parseConfig(files.get('configs/complex.conf') ?? assert.fail('complex.conf missing'));
  const [org, local] = complex.servers[0]?.hosts ?? [];
  assert.deepEqual([org?.name, local?.name], ['mongrel2.org', 'localhost']);
  assert.equal(org?.routes.length, 10);
  assert.ok(org?.routes.every((r, i) => r.target === local?.routes[i]?.target));
  const byPath = new Map(org?.routes.map((r) => [r.path, r.target]));
  assert.equal(byPath.get('/tests/'), byPath.get('/testsmulti/(.*.json)'));
  assert.equal((byPath.get('/mp3stream') as ConfigHandler).sendIdent, '53f9f1d1-1116-4751-b6ff-4fbe3e43d142');
  assert.equal((byPath.get('/') as ConfigProxy).port, 8080);
  assert.equal(complex.servers[0]?.chroot, './');
  assert.equal(complex.settings['zeromq.threads'], '1');

  const main = parseConfig(files.get('configs/mongrel2.conf') ?? assert.fail('mongrel2.conf missing'));
  const paths = main.servers[0]?.hosts[0]?.routes.map((r) => r.path);
  assert.ok(paths?.includes('/testsmulti/(.*\\.json)'), String(paths));
  assert.equal(main.settings['upload.temp_store_mode'], '0666');
  assert.equal(main.settings['upload.temp_store'], '/home/zedshaw/projects/mongrel2/tmp/upload.XXXXXX');

  const multi = parseConfig(files.get('configs/multi.conf') ?? assert.fail('multi.conf missing'));
  assert.deepEqual(multi.servers.map((s) => s.name), ['test', 'sub', 'sub']);
  // Two servers are named "sub"; the name finds the first in `servers` order, the uuid the other.
  assert.equal(findServer(multi, 'sub').uuid, '2355e656-fac6-41c8-9cba-4977b937cb94');
  assert.equal(findServer(multi, 'e3ce7982-086f-4374-adde-bee320d509e6').defaultHost, 'sub');

  const ws = parseConfig(files.get('ws/mongrel2.conf') ?? assert.fail('ws/mongrel2.conf missing'));
  const wsRoutes = ws.servers[0]?.hosts[0]?.routes ?? [];
  assert.equal((wsRoutes[0]?.target as ConfigHandler).protocol, 'tnetstring', 'comment `#)` inside the params');
  assert.equal(settingInt(ws, 'limits.client_read_retries', 5), 80);
});

// ---- lexical rules (§11.1) ----------------------------------------------------------------------

test('comments run to the end of the line, also inside constructors; # inside a string is text', () => {
  const c = parseConfig(`# head\n${conf(`{ # routes\n '/a#b': ${HANDLER} # end\n}`, '# tail\n')}`);
  assert.equal(c.servers[0]?.hosts[0]?.routes[0]?.path, '/a#b');
});

test('a comment on the last line without a newline is rejected, as m2sh does', () => {
  fails(`${conf()}# no newline`, 5, 1, /comment on the last line/);
});

test('strings: both quote styles, no escape processing, backslash only protects the next char', () => {
  const c = parseConfig(conf(`{'/x(\\.)y': Handler(send_spec="it's", send_ident='it\\'s', recv_spec="a\\"b", recv_ident='a\\\\')}`));
  assert.equal(c.servers[0]?.hosts[0]?.routes[0]?.path, '/x(\\.)y');
  const h = firstTarget(c) as ConfigHandler;
  assert.equal(h.sendSpec, "it's");
  assert.equal(h.sendIdent, "it\\'s");
  assert.equal(h.recvSpec, 'a\\"b');
  assert.equal(h.recvIdent, 'a\\\\');
});

test('strings may span lines and keep the newline; later positions count those lines', () => {
  const c = parseConfig(conf(undefined, 'settings = {"k": "one\ntwo\r\nthree"}\n'));
  assert.equal(c.settings.k, 'one\ntwo\r\nthree');
  fails(`x = 'a\nb\nc' y = ;`, 3, 8, /';' is not allowed/);
});

test('an unterminated string is reported where it starts', () => {
  fails(`x = 1\n  y = "abc\\"\n`, 2, 7, /unterminated string/);
});

test('numbers are [0-9]+ only: leading zeros fine, sign and decimals are errors', () => {
  const c = parseConfig(conf(undefined, 'settings = {"a": 0012}').replace('port=6767', 'port=06767'));
  assert.equal(c.servers[0]?.port, 6767);
  assert.equal(c.settings.a, '0012', 'settings keep the digits as written, like m2sh');
  failsAt(conf().replace('port=6767', 'port=-1'), '-1', /invalid character "-".*\[0-9\]\+/);
  fails('x = 1.5\n', 1, 6, /invalid character "\."/);
});

test('; and other stray characters are errors with their position', () => {
  fails('x = 1;\nservers = []\n', 1, 6, /invalid character ";"/);
  fails('x = [1 ~ 2]', 1, 8, /invalid character "~"/);
});

test('a capitalised all-letter variable name is a class name, hence a syntax error', () => {
  fails(`x = 1\n\nBackend = ${HANDLER}\n`, 3, 1, /'Backend' is lexed as a class name/);
  fails('x = Foo(Port=1)', 1, 9, /expected a parameter name or '\)' but found class name 'Port'/);
  // A single capital or a name with digits/underscores is an identifier (measured).
  const c = parseConfig(`A = 'x'\nBackend2 = ${HANDLER}\n${conf('{"/": Backend2}')}`);
  assert.equal((firstTarget(c) as ConfigHandler).sendIdent, 'abc');
});

// ---- syntax (§11.2) -----------------------------------------------------------------------------

test('commas are optional and may lead, but never trail', () => {
  const noCommas = parseConfig(conf(`{ '/a': Proxy(addr='x' port=1) '/b': Proxy(addr='y' port=2) }`, 'settings = {"a": 1 "b": 2}'));
  assert.deepEqual(routeTargets(noCommas), [{ kind: 'proxy', addr: 'x', port: 1 }, { kind: 'proxy', addr: 'y', port: 2 }]);
  const leading = parseConfig(conf(`{, '/a': Proxy(, addr='x', port=1)}`, 'servers = [, main]'));
  assert.deepEqual(firstTarget(leading), { kind: 'proxy', addr: 'x', port: 1 });
  fails('x = [1, 2,]', 1, 11, /comma may not stand before '\]'/);
  fails('x = {"a": 1,\n}', 2, 1, /comma may not stand before '\}'/);
  fails("x = Proxy(addr='a', port=1,)", 1, 28, /comma may not stand before '\)'/);
  fails('x = [,]', 1, 7, /comma may not stand before '\]'/);
  fails('x = [1,,2]', 1, 8, /expected a value or '\]' but found ','/);
});

test('syntax errors name what was expected and where', () => {
  fails("x = Proxy(addr='a' port=1", 1, 26, /expected a parameter name or '\)' but found end of file/);
  fails('x = {a: 1}', 1, 6, /expected a quoted dict key or '\}'/);
  fails('x = {"a" = 1}', 1, 10, /expected ':' but found '='/);
  fails('x 1', 1, 3, /expected '=' but found number 1/);
  fails('x = 1 = 2', 1, 7, /expected a variable name but found '='/);
  fails('x = Foo', 1, 8, /expected '\(' but found end of file/);
  fails('x =', 1, 4, /expected a value but found end of file/);
});

test('references may point forward; the same variable is the same object (one m2sh row)', () => {
  const c = parseConfig(`servers = [main]
main = Server(uuid="u", access_log="a", error_log="e", pid_file="p", default_host="h1", port=1,
  hosts=[Host(name="h1", routes=r), Host(name="h2", routes={"/x": h, "/y": h, "/d": d})])
r = {"/a": h, "/b": h, "/d": d}
h = ${HANDLER}
d = Dir(base="s/", index_file="i", default_ctype="t")
`);
  const [h1, h2] = c.servers[0]?.hosts ?? [];
  const targets = [...(h1?.routes ?? []), ...(h2?.routes ?? [])].map((r) => r.target);
  assert.equal(targets.length, 6);
  assert.equal(targets[0]?.kind, 'handler');
  for (const i of [1, 3, 4]) assert.equal(targets[i], targets[0]);
  assert.equal(targets[5], targets[2]);
  assert.notEqual(targets[2], targets[0]);
  // Inline constructors written twice are two objects.
  const twice = parseConfig(conf(`{'/a': ${HANDLER}, '/b': ${HANDLER}}`));
  assert.notEqual(routeTargets(twice)[0], routeTargets(twice)[1]);
  assert.deepEqual(routeTargets(twice)[0], routeTargets(twice)[1]);
});

test('the last definition wins for variables, dict keys and parameters', () => {
  const c = parseConfig(`h = Proxy(addr='first', port=1)
${conf(`{'/a': h, '/b': Proxy(addr='x', port=1, addr='y'), '/a': Proxy(addr='z', port=3)}`,
  'settings = {"k": "1", "k": "2"}\nh = Proxy(addr="second", port=2)\n')}`);
  const routes = c.servers[0]?.hosts[0]?.routes ?? [];
  assert.deepEqual(routes.map((r) => [r.path, (r.target as ConfigProxy).addr]), [['/a', 'z'], ['/b', 'y']]);
  assert.equal(c.settings.k, '2');
  const v = parseConfig(`h = Proxy(addr='first', port=1)\n${conf('{"/": h}')}h = Proxy(addr='second', port=2)\n`);
  assert.equal((firstTarget(v) as ConfigProxy).addr, 'second');
});

test('unknown parameters are ignored; `transport` picks mongrel2 (the default) or link', () => {
  const c = parseConfig(conf(
    "{'/h': Handler(send_spec='s', send_ident='i', recv_spec='r', recv_ident='', transport='link', colour=[1])}",
    '', ', error_log_level=2, matching="(.*)", bogus={"a": Nope()}',
  ));
  assert.equal((firstTarget(c) as ConfigHandler).transport, 'link');
  assert.equal(Object.hasOwn(c.servers[0] ?? {}, 'matching'), false);
  const plain = parseConfig(conf("{'/h': Handler(send_spec='s', send_ident='i', recv_spec='r', recv_ident='')}"));
  assert.equal((firstTarget(plain) as ConfigHandler).transport, 'mongrel2');
  assert.throws(
    () => parseConfig(conf("{'/h': Handler(send_spec='s', send_ident='i', recv_spec='r', recv_ident='', transport='ipc')}")),
    /transport must be 'mongrel2' or 'link' \(got 'ipc'\)/,
  );
});

test('nesting is bounded by MAX_NESTING_DEPTH with a clear error, even for huge inputs', () => {
  const nest = (n: number) => `x = ${'['.repeat(n)}${']'.repeat(n)}\n${conf()}`;
  assert.equal(parseConfig(nest(MAX_NESTING_DEPTH)).servers.length, 1);
  fails(nest(MAX_NESTING_DEPTH + 1), 1, 5 + MAX_NESTING_DEPTH, /nesting deeper than 64 levels/);
  fails(nest(100_000), 1, 5 + MAX_NESTING_DEPTH, /nesting deeper/);
});

// ---- references and semantic checks (§11.3) -----------------------------------------------------

test('undefined and unknown things are errors only where m2sh reads them', () => {
  failsAt(conf('{"/h": nope}'), 'nope', /undefined variable 'nope'/);
  failsAt(conf('{"/h": Widget(a=1)}'), 'Widget', /unknown class 'Widget'/);
  // Unused variables are never looked at, as in m2sh (measured).
  assert.equal(parseConfig(`${conf()}unused = Widget(a=missing)\n`).servers.length, 1);
});

test('reference cycles and reference chains give a clear error (m2sh follows one level)', () => {
  failsAt(`a = b\nb = a\n${conf('{"/": a}')}`, 'a}', /reference cycle: a -> b -> a/);
  failsAt(`a = a\n${conf('{"/": a}')}`, 'a}', /reference cycle: a -> a/);
  failsAt(`a = b\nb = ${HANDLER}\n${conf('{"/": a}')}`, 'a}', /'a' refers to 'b', which is itself a reference/);
  // One level is fine for any value: strings, dicts.
  const c = parseConfig(`hn = "localhost"\nr = {"/": ${HANDLER}}\n${conf('r').replace('default_host="localhost"', 'default_host=hn')}`);
  assert.equal(c.servers[0]?.defaultHost, 'localhost');
});

test('every required field is checked at its constructor', () => {
  const base = conf(`{'/h': ${HANDLER}, '/s/': Dir(base='s/', index_file='i', default_ctype='t'), '/p': Proxy(addr='a', port=1)}`);
  const cases: Array<[string, string, RegExp]> = [
    // [constructor (its position is expected), field, text to remove]
    ...['uuid', 'access_log', 'error_log', 'pid_file', 'default_host', 'port'].map(
      (f): [string, string, RegExp] => ['Server', f, new RegExp(`${f}=[^,]*,\\s*`)]),
    ['Host', 'name', /name="localhost", /],
    ['Host', 'routes', /, routes=\{.*\}(?=\)\])/s],
    ...['send_spec', 'send_ident', 'recv_spec', 'recv_ident', 'base', 'index_file', 'default_ctype'].map(
      (f): [string, string, RegExp] => [f.includes('_spec') || f.includes('_ident') ? 'Handler' : 'Dir', f, new RegExp(`(,\\s*)?${f}='[^']*'`)]),
    ['Proxy', 'addr', /addr='a', /],
    ['Proxy', 'port', /, port=1(?=\))/],
  ];
  for (const [ctor, field, remove] of cases) {
    const text = base.replace(remove, '');
    assert.notEqual(text, base, `${ctor}.${field} not removed`);
    failsAt(text, `${ctor}(`, new RegExp(`^[^ ]+ ${ctor} is missing required parameter '${field}'$`));
  }
  fails(conf().replace(/hosts=.*\)\]\)/s, 'chroot="/x")'), 1, 8, /Server is missing required parameter 'hosts'/);
  fails('x = 1\n', 1, 1, /no 'servers' variable/);
});

test('wrong types and bad values point at the value', () => {
  failsAt(conf().replace('port=6767', 'port="6767"'), '"6767"', /Server.port must be a number, not a string/);
  failsAt(conf().replace('port=6767', 'port=0'), '0,', /Server.port must be 1-65535, got 0/);
  failsAt(conf("{'/p': Proxy(addr='a', port=65536)}"), '65536', /Proxy.port must be 1-65535/);
  failsAt(conf().replace('uuid="u1"', 'uuid=1'), '1,', /Server.uuid must be a string, not a number/);
  failsAt(conf().replace('default_host="localhost"', 'default_host="other"'), '"other"', /default_host 'other' names none/);
  failsAt(conf("{'/s/': Dir(base='static', index_file='i', default_ctype='t')}"), "'static'", /Dir.base must end with '\/'/);
  failsAt(conf('"nope"'), '"nope"', /Host.routes must be a dict, not a string/);
  failsAt(conf("{'/h': 'str'}"), "'str'", /expected a route target \(Handler, Dir or Proxy\) but found a string/);
  failsAt(conf("{'/h': Filter(name='x')}"), 'Filter', /a Filter cannot be used here/);
  failsAt(conf().replace('hosts=[Host', 'hosts=[Proxy(addr="a", port=1), Host'), 'Proxy', /a Proxy cannot be used here; expected a Host/);
  failsAt(`${conf()}settings = [1]\n`, '[1]', /settings must be a dict, not a list/);
  fails('m = 1\nservers = m\n', 2, 11, /servers must be a list written in place, not a reference/);
  fails('servers = [1]\n', 1, 12, /expected a Server but found a number/);
  failsAt(conf("{'/s/': Dir(base='s/', index_file='i', default_ctype='t', cache_ttl=99999999999999999999)}"), '999', /Dir.cache_ttl must be/);
});

test('defaults: bind_addr, chroot, control_port, use_ssl, matching, protocol, raw_payload, cache_ttl', () => {
  const c = parseConfig(conf(`{'/h': ${HANDLER}, '/s/': Dir(base='s/', index_file='i', default_ctype='t')}`));
  const s = c.servers[0] ?? assert.fail('no server');
  assert.deepEqual([s.bindAddr, s.chroot, s.controlPort, s.useSsl], ['0.0.0.0', '', '', false]);
  assert.equal(s.hosts[0]?.matching, 'localhost');
  const [h, d] = routeTargets(c) as [ConfigHandler, ConfigDir];
  assert.deepEqual([h.protocol, h.rawPayload, d.cacheTtl], ['json', false, 0]);
  const set = parseConfig(conf(
    `{'/h': Handler(send_spec='s', send_ident='i', recv_spec='r', recv_ident='r', protocol='tnetstring', raw_payload=1), '/s/': Dir(base='s/', index_file='i', default_ctype='t', cache_ttl=30)}`,
    '', ', bind_addr="127.0.0.1", chroot="/srv", control_port="ipc://c", use_ssl=1',
  ).replace('Host(name="localhost"', 'Host(name="localhost", matching="(.+).example.com"'));
  const s2 = set.servers[0] ?? assert.fail('no server');
  assert.deepEqual([s2.bindAddr, s2.chroot, s2.controlPort, s2.useSsl], ['127.0.0.1', '/srv', 'ipc://c', true]);
  assert.equal(s2.hosts[0]?.matching, '(.+).example.com');
  const [h2, d2] = routeTargets(set) as [ConfigHandler, ConfigDir];
  assert.deepEqual([h2.protocol, h2.rawPayload, h2.recvIdent, d2.cacheTtl], ['tnetstring', true, 'r', 30]);
});

test('legal but suspicious values become warnings, not errors', () => {
  const c = parseConfig(conf(
    "{'/h': Handler(send_spec='s', send_ident='my_handler.v1', recv_spec='r', recv_ident='', protocol='xml')}",
    'settings = {"ok": "1", "list": [1, 2]}\n',
  ).replace(', name="n"', ''));
  const h = firstTarget(c) as ConfigHandler;
  assert.equal(h.protocol, 'json', 'any other protocol behaves as json (§11.3)');
  assert.equal(c.servers[0]?.name, undefined);
  assert.deepEqual({ ...c.settings }, { ok: '1' }, 'non-text settings are dropped like m2sh does');
  const w = c.warnings ?? [];
  assert.equal(w.length, 4, w.join('\n'));
  assert.match(w.find((x) => x.includes('send_ident')) ?? '', /^mongrel2\.conf:3:81: send_ident 'my_handler\.v1'/);
  assert.match(w.find((x) => x.includes('protocol')) ?? '', /^mongrel2\.conf:3:\d+: protocol 'xml'/);
  assert.match(w.find((x) => x.includes('no name')) ?? '', /^mongrel2\.conf:1:8: /);
  assert.match(w.find((x) => x.includes('list')) ?? '', /^mongrel2\.conf:5:32: settings\["list"\] is a list/);
  assert.match(parseConfig('servers = []').warnings?.[0] ?? '', /servers is empty/);
});

test('settings and mimetypes are safe from prototype pollution', () => {
  const c = parseConfig(conf(undefined, 'settings = {"__proto__": "x", "constructor": "y", "toString": 1}\nmimetypes = {".ttf": "font/ttf", "__proto__": "z"}\n'));
  assert.equal(Object.getPrototypeOf(c.settings), null);
  assert.deepEqual(Object.keys(c.settings), ['__proto__', 'constructor', 'toString']);
  assert.equal(c.settings.__proto__, 'x');
  assert.equal(c.mimetypes['.ttf'], 'font/ttf');
  assert.equal(({} as Record<string, unknown>).x, undefined);
  assert.equal(settingInt(c, 'toString', 5), 1);
  assert.equal(settingInt(c, 'hasOwnProperty', 5), 5);
});

// ---- helpers ------------------------------------------------------------------------------------

test('settingInt reads settings with C atoi semantics (§11.4)', () => {
  const c = parseConfig(conf(undefined, `settings = {"k": "20k", "junk": "abc", "neg": " \t-5x", "plus": "+7", "empty": "",
    "zeros": 0012, "huge": 99999999999999, "neghuge": "-99999999999999", "minus0": "-0"}`));
  const read = (k: string) => settingInt(c, k, -1);
  assert.deepEqual(
    ['k', 'junk', 'neg', 'plus', 'empty', 'zeros', 'huge', 'neghuge', 'minus0', 'missing'].map(read),
    [20, 0, -5, 7, 0, 12, 2147483647, -2147483648, 0, -1],
  );
  assert.ok(Object.is(read('minus0'), 0));
});

test('findServer picks the first server, or by uuid, then by name; clear error otherwise', () => {
  const two = parseConfig(`${conf()}b = Server(uuid="u2", name="u1", access_log="a", error_log="e", pid_file="p",
  default_host="h", port=2, hosts=[Host(name="h", routes={})])
servers = [main, b]\n`);
  assert.equal(findServer(two).uuid, 'u1');
  assert.equal(findServer(two, 'u2').port, 2);
  assert.equal(findServer(two, 'u1').port, 6767, 'uuid match wins over an equal name');
  assert.equal(findServer(two, 'n').uuid, 'u1');
  assert.throws(() => findServer(two, 'zz'), (err: unknown) =>
    err instanceof M2gateError && err.code === 'M2G_ERR_CONFIG' && /no server with uuid or name 'zz' \(servers: u1 \(n\), u2 \(u1\)\)/.test(err.message));
  assert.throws(() => findServer(parseConfig('servers = []')), /the config defines no servers/);
});

test('ConfigError carries file, line and column; custom file names appear in messages', () => {
  let caught: unknown;
  try {
    parseConfig('\n\n   x = ]', 'etc/site.conf');
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError && caught instanceof M2gateError);
  assert.equal(caught.name, 'ConfigError');
  assert.deepEqual([caught.fileName, caught.line, caught.column], ['etc/site.conf', 3, 8]);
  assert.equal(caught.message, "etc/site.conf:3:8: expected a value but found ']'");
});

test('arbitrary input either parses or throws ConfigError, never anything else', () => {
  const tokens = ['x', 'servers', 'Server', 'Host', 'Foo', '=', '(', ')', '[', ']', '{', '}', ',', ':', '"s"', "'t", '1', '#c\n', '\n', '\\', ';'];
  const check = (text: string): void => {
    try {
      parseConfig(text);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
    }
  };
  fc.assert(fc.property(fc.array(fc.constantFrom(...tokens), { maxLength: 60 }).map((a) => a.join(' ')), check), { numRuns: 2000 });
  fc.assert(fc.property(fc.string({ maxLength: 200 }), check), { numRuns: 1000 });
});
