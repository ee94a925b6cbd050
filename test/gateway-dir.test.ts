// Dir routes through the whole gateway (§7). Every traversal vector is sent as raw request
// bytes (no client-side normalisation) and must get 404 — never the secret bytes, never 500 —
// including Mongrel2's own hole: base `www/` serving the sibling `www-secret/` (DESIGN:
// deliberate differences). Then the basics a Dir must keep doing: index file, content types,
// conditional 304, the directory redirect, HEAD.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exchange, startGateway, tempTree } from './helpers/gateway.js';

const SECRET = 'TOP-SECRET-7f3a9c';
const dir = tempTree();
mkdirSync(join(dir, 'www', 'sub'), { recursive: true });
mkdirSync(join(dir, 'www-secret'));
writeFileSync(join(dir, 'www', 'index.html'), '<!doctype html><title>home</title>');
writeFileSync(join(dir, 'www', 'style.css'), 'body { color: red }');
writeFileSync(join(dir, 'www', 'data.json'), '{"ok":true}');
writeFileSync(join(dir, 'www', 'README'), 'no extension');
writeFileSync(join(dir, 'www', 'sub', 'index.html'), '<p>sub</p>');
writeFileSync(join(dir, 'www-secret', 'x'), `${SECRET} sibling`);
writeFileSync(join(dir, 'secret.txt'), `${SECRET} parent`);
symlinkSync(join(dir, 'www-secret', 'x'), join(dir, 'www', 'link-out'));
symlinkSync(join(dir, 'www-secret'), join(dir, 'www', 'dirlink'));

const DIR = (base: string): string => `Dir(base='${base}', index_file='index.html', default_ctype='text/plain')`;
const rig = await startGateway({ routes: [`'/': ${DIR('www/')}`, `'/static/': ${DIR('www/')}`] }, { dir });
after(() => rig.close());

const raw = (target: string, method = 'GET', headers = ''): string => `${method} ${target} HTTP/1.1\r\nHost: localhost\r\n${headers}Connection: close\r\n\r\n`;

const TRAVERSALS = [
  // Mongrel2 1.12.2 serves this one: its containment check is a bare string prefix.
  '/../www-secret/x',
  '/static/../www-secret/x',
  '/static/../secret.txt',
  '/static/../../secret.txt',
  '/static/sub/../../www-secret/x',
  '/static//../secret.txt',
  '/static/%2e%2e/www-secret/x',
  '/static/%2E%2E/secret.txt',
  '/static/.%2e/www-secret/x',
  '/%2e%2e/www-secret/x',
  '/static/..%2fwww-secret%2fx',
  '/static/%2e%2e%2fsecret.txt',
  '/static/sub%2f..%2f..%2fsecret.txt',
  '/static/index.html%00',
  '/static/%00/../secret.txt',
  '/static/%c0%ae%c0%ae/www-secret/x',
  '/static/%e0%80%ae%e0%80%ae/secret.txt',
  '/static/..%c0%afsecret.txt',
  '/static/%252e%252e/secret.txt',
  '/static/link-out',
  '/static/dirlink/x',
  '/static/..%5csecret.txt',
  '/static/%5c..%5c..%5csecret.txt',
];

for (const target of TRAVERSALS) {
  test(`traversal ${target} → 404 without the secret`, async () => {
    const r = await exchange(rig.port, raw(target));
    assert.equal(r.status, 404);
    assert.ok(!r.raw.includes(SECRET), 'secret bytes leaked');
  });
}

test('raw backslashes never reach Dir: the request line is refused (400, as Mongrel2 §10) and nothing leaks', async () => {
  for (const target of ['/static/..\\secret.txt', '/static/..\\..\\www-secret\\x']) {
    const r = await exchange(rig.port, raw(target));
    assert.equal(r.status, 400, target);
    assert.ok(!r.raw.includes(SECRET));
  }
});

test('index file, content types and the default type', async () => {
  const cases: Array<[string, string, string]> = [
    ['/static/', 'text/html', '<!doctype html><title>home</title>'],
    ['/', 'text/html', '<!doctype html><title>home</title>'],
    ['/static/sub/', 'text/html', '<p>sub</p>'],
    ['/static/style.css', 'text/css', 'body { color: red }'],
    ['/static/data.json', 'application/json', '{"ok":true}'],
    ['/static/README', 'text/plain', 'no extension'],
  ];
  for (const [target, type, body] of cases) {
    const r = await exchange(rig.port, raw(target));
    assert.equal(r.status, 200, target);
    assert.equal(r.headers['content-type']?.split(';')[0], type, target);
    assert.equal(r.body.toString(), body, target);
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(body)));
  }
});

test('conditional GET: If-None-Match and If-Modified-Since → 304 without a body', async () => {
  const first = await exchange(rig.port, raw('/static/style.css'));
  const etag = first.headers.etag!;
  const lastModified = first.headers['last-modified']!;
  assert.ok(etag && lastModified);
  for (const header of [`If-None-Match: ${etag}\r\n`, `If-Modified-Since: ${lastModified}\r\n`]) {
    const r = await exchange(rig.port, raw('/static/style.css', 'GET', header));
    assert.equal(r.status, 304, header);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers.etag, etag);
  }
  const changed = await exchange(rig.port, raw('/static/style.css', 'GET', 'If-None-Match: "other"\r\n'));
  assert.equal(changed.status, 200);
});

test('a directory without its slash redirects; HEAD gets the head only', async () => {
  const r = await exchange(rig.port, raw('/static/sub?x=1'));
  assert.equal(r.status, 301);
  assert.equal(r.headers.location, '/static/sub/?x=1');
  const head = await exchange(rig.port, raw('/static/data.json', 'HEAD'), { head: true });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], '11');
  assert.equal(head.raw.toString('latin1').endsWith('\r\n\r\n'), true);
});
