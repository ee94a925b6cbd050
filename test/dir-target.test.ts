// Dir routes (§7): static files, conditionals, and above all containment in the base directory.
// Traversal vectors go over a raw TCP socket so no client library normalises the target.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readlinkSync, readdirSync, realpathSync, renameSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { DirTarget } from '../gateway/dir-target.js';
import type { ConfigDir } from '../protocol/mongrel2-conf.js';

const SECRET = `TOP-SECRET-${randomBytes(8).toString('hex')}`;
const MTIME = new Date('2020-01-02T03:04:05Z');
const BIG = randomBytes(1024 * 1024);
const HUGE_SIZE = 32 * 1024 * 1024;

let root: string;
let server: Server;
let port: number;
let agent: Agent;
let lastServe: Promise<void> = Promise.resolve();

interface RawResponse { status: number; head: string; body: Buffer; all: Buffer }

/** Sends `target` byte for byte (latin1) and reads until the server closes (Connection: close). */
async function raw(target: string, method = 'GET', headers = '', to = port): Promise<RawResponse> {
  const sock = connect(to, '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  sock.write(Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${headers}\r\n`, 'latin1'));
  await once(sock, 'end');
  sock.destroy();
  const all = Buffer.concat(chunks);
  const split = all.indexOf('\r\n\r\n');
  assert.ok(split > 0, `no response head for ${target}`);
  const head = all.subarray(0, split).toString('latin1');
  return { status: Number(head.slice(9, 12)), head, body: all.subarray(split + 4), all };
}

function header(r: RawResponse, name: string): string | undefined {
  const line = r.head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

async function get(path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' | 'POST' = 'GET', to = port) {
  const r = await request(`http://127.0.0.1:${to}${path}`, { dispatcher: agent, method, headers });
  const body = Buffer.from(await r.body.arrayBuffer());
  return { status: r.statusCode, headers: r.headers, body };
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'm2gate-dir-'));
  const www = join(root, 'www');
  const secretDir = join(root, 'www-secret');
  mkdirSync(join(www, 'sub'), { recursive: true });
  mkdirSync(join(www, 'empty'));
  mkdirSync(secretDir);
  writeFileSync(join(secretDir, 'secret.txt'), SECRET);
  writeFileSync(join(root, 'secret-root.txt'), SECRET);
  writeFileSync(join(www, 'index.html'), '<h1>root index</h1>');
  writeFileSync(join(www, 'sub', 'index.html'), '<h1>sub index</h1>');
  writeFileSync(join(www, 'a.txt'), 'hello a');
  writeFileSync(join(www, 'page.html'), '<p>page</p>');
  writeFileSync(join(www, 'data.json'), '{"x":1}');
  writeFileSync(join(www, 'noext'), 'no extension');
  writeFileSync(join(www, 'file.zzunknown'), 'unknown extension');
  writeFileSync(join(www, 'custom.m2x'), 'override');
  writeFileSync(join(www, 'notes.md'), '# md');
  writeFileSync(join(www, '.hidden'), 'hidden file');
  writeFileSync(join(www, 'empty.txt'), '');
  writeFileSync(join(www, 'big.bin'), BIG);
  writeFileSync(join(www, 'huge.bin'), Buffer.alloc(HUGE_SIZE, 0x61));
  utimesSync(join(www, 'a.txt'), MTIME, MTIME);
  symlinkSync('../www-secret', join(www, 'link-out'));
  symlinkSync('../www-secret/secret.txt', join(www, 'file-out'));
  symlinkSync(join(root, 'secret-root.txt'), join(www, 'abs-out'));
  symlinkSync('a.txt', join(www, 'link-in'));
  execFileSync('mkfifo', [join(www, 'fifo')]);

  const config: ConfigDir = { kind: 'dir', base: 'www/', indexFile: 'index.html', defaultCtype: 'text/x-default', cacheTtl: 0 };
  const target = new DirTarget(config, { cwd: root, mimetypes: { '.m2x': 'application/x-m2x', md: 'text/x-custom-md' } });
  // Control: the secret *is* servable from its own base, so the 404s below are meaningful.
  const secretTarget = new DirTarget({ ...config, base: 'www-secret/' }, { cwd: root });
  server = createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    // `//…` stands in for a Dir mounted at prefix `/` (the open-redirect case).
    lastServe = path.startsWith('/secret/')
      ? secretTarget.serve(req, res, { prefix: '/secret/', path })
      : path.startsWith('//') ? target.serve(req, res, { prefix: '/', path }) : target.serve(req, res, { prefix: '/static/', path });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
  agent = new Agent({ keepAliveTimeout: 10, keepAliveMaxTimeout: 10 });
});

after(async () => {
  await agent.close();
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
  rmSync(root, { recursive: true, force: true });
});

describe('serving files', () => {
  test('index file for the prefix and for a sub-directory with trailing slash', async () => {
    assert.equal((await get('/static/')).body.toString(), '<h1>root index</h1>');
    const sub = await get('/static/sub/');
    assert.equal(sub.status, 200);
    assert.equal(sub.body.toString(), '<h1>sub index</h1>');
    assert.equal(sub.headers['content-type'], 'text/html');
  });

  test('a directory without its index file is 404', async () => {
    const r = await get('/static/empty/');
    assert.equal(r.status, 404);
    assert.equal(r.body.toString(), 'Not Found');
  });

  test('directory without trailing slash → 301 to path + "/" + query (not Mongrel2\'s //host/uri?q/)', async () => {
    const plain = await get('/static/sub');
    assert.equal(plain.status, 301);
    assert.equal(plain.headers.location, '/static/sub/');
    const query = await get('/static/sub?x=1&y=2');
    assert.equal(query.status, 301);
    assert.equal(query.headers.location, '/static/sub/?x=1&y=2');
  });

  test('the redirect never becomes scheme-relative (`//host/`), even for a Dir at prefix `/`', async () => {
    const r = await raw('//sub?x=1');
    assert.equal(r.status, 301);
    assert.equal(header(r, 'location'), '/sub/?x=1');
  });

  test('content types: by extension, default_ctype when unknown or none, config overrides', async () => {
    const cases: Array<[string, string]> = [
      ['/static/page.html', 'text/html'],
      ['/static/a.txt', 'text/plain'],
      ['/static/data.json', 'application/json'],
      ['/static/file.zzunknown', 'text/x-default'],
      ['/static/noext', 'text/x-default'],
      ['/static/custom.m2x', 'application/x-m2x'],
      ['/static/notes.md', 'text/x-custom-md'],
    ];
    for (const [path, type] of cases) {
      const r = await get(path);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers['content-type'], type, path);
    }
  });

  test('percent-decoded names, hidden files, empty files and symlinks that stay inside', async () => {
    assert.equal((await get('/static/%61.txt')).body.toString(), 'hello a');
    assert.equal((await get('/static/.hidden')).body.toString(), 'hidden file');
    const empty = await get('/static/empty.txt');
    assert.equal(empty.status, 200);
    assert.equal(empty.headers['content-length'], '0');
    assert.equal((await get('/static/link-in')).body.toString(), 'hello a');
  });

  test('200 headers: Content-Length, Last-Modified, quoted "<hex mtime>-<hex size>" ETag', async () => {
    const r = await get('/static/a.txt');
    assert.equal(r.headers['content-length'], '7');
    assert.equal(r.headers['last-modified'], MTIME.toUTCString());
    assert.equal(r.headers.etag, `"${MTIME.getTime().toString(16)}-7"`);
  });

  test('HEAD sends the headers only', async () => {
    const r = await raw('/static/a.txt', 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(header(r, 'content-length'), '7');
    assert.equal(header(r, 'content-type'), 'text/plain');
    assert.equal(r.body.length, 0);
  });

  test('methods other than GET/HEAD → 405 with Allow', async () => {
    const r = await get('/static/a.txt', {}, 'POST');
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'GET, HEAD');
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(r.body.toString(), 'Method Not Allowed');
  });

  test('missing file, prefix longer than path, FIFO, over-long name → 404 Not Found', async () => {
    for (const path of ['/static/nope.txt', '/stat', '/static/fifo', `/static/${'x'.repeat(300)}`, '/static/a.txt/']) {
      const r = await raw(path);
      assert.equal(r.status, 404, path);
      assert.equal(r.body.toString(), 'Not Found', path);
      assert.equal(header(r, 'content-type'), 'text/plain; charset=utf-8', path);
    }
  });

  test('a 1 MiB file arrives intact', async () => {
    const r = await get('/static/big.bin');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(BIG.length));
    assert.ok(r.body.equals(BIG));
  });

  test('client abort mid-file: serve() resolves and the file is no longer open', { timeout: 10_000 }, async () => {
    const sock = connect(port, '127.0.0.1');
    sock.write('GET /static/huge.bin HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await once(sock, 'data');
    const serving = lastServe;
    sock.destroy();
    await serving;
    const open = readdirSync('/proc/self/fd').flatMap((fd) => {
      try { return [readlinkSync(`/proc/self/fd/${fd}`)]; } catch { return []; }
    });
    assert.ok(!open.some((p) => p.endsWith('huge.bin')), 'huge.bin still open');
    assert.equal((await get('/static/a.txt')).status, 200, 'server still serves');
  });
});

describe('conditional requests', () => {
  const lastModified = MTIME.toUTCString();
  const etag = `"${MTIME.getTime().toString(16)}-7"`;
  const earlier = new Date(MTIME.getTime() - 86_400_000).toUTCString();
  const later = new Date(MTIME.getTime() + 86_400_000).toUTCString();

  test('If-None-Match: exact, in a list, *, weak form → 304 with ETag and no body', async () => {
    for (const value of [etag, `"other", ${etag}`, '*', `W/${etag}`]) {
      const r = await raw('/static/a.txt', 'GET', `If-None-Match: ${value}\r\n`);
      assert.equal(r.status, 304, value);
      assert.equal(header(r, 'etag'), etag);
      assert.equal(header(r, 'content-type'), undefined);
      assert.equal(r.body.length, 0);
    }
    assert.equal((await get('/static/a.txt', { 'if-none-match': '"nope"' })).status, 200);
  });

  test('If-Modified-Since: not modified → 304, modified since → 200; If-None-Match wins', async () => {
    assert.equal((await get('/static/a.txt', { 'if-modified-since': lastModified })).status, 304);
    assert.equal((await get('/static/a.txt', { 'if-modified-since': later })).status, 304);
    assert.equal((await get('/static/a.txt', { 'if-modified-since': earlier })).status, 200);
    assert.equal((await get('/static/a.txt', { 'if-modified-since': 'garbage' })).status, 200);
    const both = await get('/static/a.txt', { 'if-none-match': '"nope"', 'if-modified-since': later });
    assert.equal(both.status, 200);
  });

  test('If-Match mismatch or weak → 412; * or the ETag → 200', async () => {
    for (const value of ['"nope"', `W/${etag}`, 'garbage']) {
      const r = await get('/static/a.txt', { 'if-match': value });
      assert.equal(r.status, 412, value);
      assert.equal(r.body.toString(), 'Precondition Failed');
    }
    assert.equal((await get('/static/a.txt', { 'if-match': '*' })).status, 200);
    assert.equal((await get('/static/a.txt', { 'if-match': `"x", ${etag}` })).status, 200);
  });

  test('If-Unmodified-Since older than the file → 412, otherwise 200', async () => {
    assert.equal((await get('/static/a.txt', { 'if-unmodified-since': earlier })).status, 412);
    assert.equal((await get('/static/a.txt', { 'if-unmodified-since': lastModified })).status, 200);
  });
});

describe('containment: nothing outside the base is ever served', () => {
  test('control: the secret is readable through its own Dir', async () => {
    const r = await raw('/secret/secret.txt');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), SECRET);
  });

  const vectors = [
    '/static/../www-secret/secret.txt',
    '/static/sub/../../www-secret/secret.txt',
    '/static/%2e%2e/www-secret/secret.txt',
    '/static/%2E%2e/www-secret/secret.txt',
    '/static/.%2e/www-secret/secret.txt',
    '/static/%2e./www-secret/secret.txt',
    '/static/..%2fwww-secret%2fsecret.txt',
    '/static/..%2Fwww-secret%2Fsecret.txt',
    '/static/%2e%2e%2fwww-secret%2fsecret.txt',
    '/static/..%5cwww-secret%5csecret.txt',
    '/static/..\\www-secret\\secret.txt',
    '/static/sub\\..\\..\\www-secret\\secret.txt',
    '/static/a.txt%00',
    '/static/%00',
    '/static/secret.txt%00.html',
    '/static/%c0%ae%c0%ae/www-secret/secret.txt',
    '/static/%c0%ae%c0%ae%c0%afwww-secret%c0%afsecret.txt',
    '/static/%e0%80%ae%e0%80%ae/www-secret/secret.txt',
    '/static/%25%32%65%25%32%65/www-secret/secret.txt',
    '/static/%',
    '/static/%zz',
    '/static/%2',
    '/static/link-out/secret.txt',
    '/static/file-out',
    '/static/abs-out',
    '/static/C:%5cwindows',
    '/static/%2fetc%2fpasswd',
  ];
  for (const target of vectors) {
    test(`404 for ${target}`, async () => {
      const r = await raw(target);
      assert.equal(r.status, 404, r.head);
      assert.equal(r.body.toString(), 'Not Found');
      assert.ok(!r.all.includes(SECRET), 'secret bytes leaked');
    });
  }

  test('absolute paths stay below the base', async () => {
    for (const abs of [join(realpathSync(root), 'www-secret', 'secret.txt'), '/etc/passwd']) {
      const r = await raw(`/static/${abs}`);
      assert.equal(r.status, 404, abs);
      assert.ok(!r.all.includes(SECRET));
    }
  });
});

describe('file-record cache (cache_ttl, §7)', () => {
  const OLD = new Date('2021-03-04T05:06:07.250Z');
  const OTHER = new Date('2022-03-04T05:06:07.500Z');
  // Ahead of real time, so every file here has "settled" timestamps and its bytes may be
  // cached; tests move it on to age records past cache_ttl.
  let clock = Date.now() + 60_000;
  const now = (): number => clock;
  // Real time, for the one test about files written moments ago.
  let freshClock = 0;
  let cport: number;
  let cserver: Server;
  let dir: string;
  const targets = new Map<string, DirTarget>();
  const stats = (prefix: string) => targets.get(prefix)!.cacheStats;
  const fetch = (path: string, method: 'GET' | 'HEAD' = 'GET') => get(path, {}, method, cport);
  const write = (rel: string, data: string | Buffer, mtime = OLD): void => {
    writeFileSync(join(dir, rel), data);
    utimesSync(join(dir, rel), mtime, mtime);
  };

  before(async () => {
    dir = join(root, 'cache');
    for (const d of ['pub/d', 'pub/x', 'outside', 'pub60/big', 'outside60', 'pubE', 'pubR']) mkdirSync(join(dir, d), { recursive: true });
    write('pub/f.txt', 'one');
    write('pub/gone.txt', 'soon gone');
    write('pub/x/y.txt', 'why');
    write('pub/d/inner.txt', 'inside');
    write('outside/inner.txt', SECRET);
    write('pub60/m.txt', 'memory');
    write('pub60/big/large.bin', Buffer.alloc(100 * 1024, 0x62));
    write('outside60/large.bin', Buffer.concat([Buffer.from(SECRET), Buffer.alloc(100 * 1024 - SECRET.length, 0x63)]));
    for (let i = 1; i <= 6; i++) write(`pubE/e${i}.txt`, Buffer.alloc(1000, 0x30 + i));
    write('pubE/five-k.txt', Buffer.alloc(5000, 0x35));

    const base: ConfigDir = { kind: 'dir', base: '', indexFile: 'index.html', defaultCtype: 'text/plain', cacheTtl: 0 };
    targets.set('/c0/', new DirTarget({ ...base, base: 'cache/pub/' }, { cwd: root, now }));
    targets.set('/c60/', new DirTarget({ ...base, base: 'cache/pub60/', cacheTtl: 60 }, { cwd: root, now }));
    targets.set('/e3/', new DirTarget({ ...base, base: 'cache/pubE/' }, { cwd: root, now, cache: { maxEntries: 3 } }));
    targets.set('/r/', new DirTarget({ ...base, base: 'cache/pubR/' }, { cwd: root, now: () => freshClock }));
    targets.set('/eb/', new DirTarget({ ...base, base: 'cache/pubE/' }, { cwd: root, now, cache: { maxBytes: 3000 } }));
    cserver = createServer((req, res) => {
      const path = req.url ?? '/';
      const prefix = `/${path.split('/')[1] ?? ''}/`;
      const target = targets.get(prefix);
      if (target) void target.serve(req, res, { prefix, path });
      else res.writeHead(500).end();
    });
    cserver.listen(0, '127.0.0.1');
    await once(cserver, 'listening');
    cport = (cserver.address() as AddressInfo).port;
  });

  after(async () => {
    cserver.closeAllConnections();
    cserver.close();
    await once(cserver, 'close');
  });

  test('cache_ttl=0: a record is reused only after a matching lstat; a modified file is served fresh', async () => {
    assert.equal((await fetch('/c0/f.txt')).body.toString(), 'one');
    const s1 = stats('/c0/');
    assert.equal((await fetch('/c0/f.txt')).body.toString(), 'one');
    const s2 = stats('/c0/');
    assert.equal(s2.hits, s1.hits + 1, 'answered from the record');
    assert.equal(s2.lookups, s1.lookups, 'no realpath/open for an unchanged file');
    assert.ok(s2.revalidations > s1.revalidations, 'but an lstat checked it');

    write('pub/f.txt', 'three'); // new size, same mtime as before
    assert.equal((await fetch('/c0/f.txt')).body.toString(), 'three');
    write('pub/f.txt', 'tres!', OTHER); // same size, another mtime
    const changed = await fetch('/c0/f.txt');
    assert.equal(changed.body.toString(), 'tres!');
    assert.equal(changed.headers.etag, `"${OTHER.getTime().toString(16)}-5"`);
    assert.equal(stats('/c0/').lookups, s2.lookups + 2, 'each change took the full lookup');
  });

  test('cache_ttl=0: a deleted file becomes 404, and 404s are never cached', async () => {
    assert.equal((await fetch('/c0/gone.txt')).status, 200);
    assert.equal((await fetch('/c0/gone.txt')).body.toString(), 'soon gone');
    const before = stats('/c0/');
    unlinkSync(join(dir, 'pub/gone.txt'));
    for (let i = 1; i <= 2; i++) {
      const r = await fetch('/c0/gone.txt');
      assert.equal(r.status, 404);
      assert.equal(r.body.toString(), 'Not Found');
      assert.equal(stats('/c0/').lookups, before.lookups + i, 'every 404 is a full lookup');
    }
    assert.equal(stats('/c0/').entries, before.entries - 1, 'the record is gone');
  });

  test('cache_ttl=0: a directory on the path that became a file (lstat fails with ENOTDIR) → 404', async () => {
    assert.equal((await fetch('/c0/x/y.txt')).body.toString(), 'why');
    assert.equal((await fetch('/c0/x/y.txt')).body.toString(), 'why');
    rmSync(join(dir, 'pub/x'), { recursive: true });
    write('pub/x', 'now a file');
    const r = await fetch('/c0/x/y.txt');
    assert.equal(r.status, 404);
    assert.equal(r.body.toString(), 'Not Found');
  });

  test('records are keyed by the decoded, checked path; traversal still 404s with a warm cache', async () => {
    assert.equal((await fetch('/c0/d/inner.txt')).body.toString(), 'inside');
    const before = stats('/c0/');
    assert.equal((await fetch('/c0/d/%69nner.txt')).body.toString(), 'inside');
    assert.equal((await fetch('/c0/./d//inner.txt')).body.toString(), 'inside');
    assert.equal(stats('/c0/').lookups, before.lookups, 'other spellings share the record');
    for (const target of ['/c0/../outside/inner.txt', '/c0/d/../../outside/inner.txt', '/c0/%2e%2e/outside/inner.txt', '/c0/d%2finner.txt']) {
      const r = await raw(target, 'GET', '', cport);
      assert.equal(r.status, 404, target);
      assert.ok(!r.all.includes(SECRET), target);
    }
  });

  test('cache_ttl=0: a directory swapped for a symlink out of the base after caching → 404, not the outside bytes', async () => {
    assert.equal((await fetch('/c0/d/inner.txt')).body.toString(), 'inside');
    renameSync(join(dir, 'pub/d'), join(dir, 'pub/d-old'));
    symlinkSync('../outside', join(dir, 'pub/d'));
    const r = await raw('/c0/d/inner.txt', 'GET', '', cport);
    assert.equal(r.status, 404);
    assert.ok(!r.all.includes(SECRET), 'secret bytes leaked');
  });

  test('cache_ttl>0: an unchanged record answers from memory, with no file-system call, until the TTL runs out', async () => {
    assert.equal((await fetch('/c60/m.txt')).body.toString(), 'memory');
    const s1 = stats('/c60/');
    const again = await fetch('/c60/m.txt');
    assert.equal(again.body.toString(), 'memory');
    assert.equal(again.headers['content-type'], 'text/plain');
    const s2 = stats('/c60/');
    assert.equal(s2.hits, s1.hits + 1);
    assert.equal(s2.lookups, s1.lookups);
    assert.equal(s2.revalidations, s1.revalidations, 'not even an lstat');
    // Proof that the file system is not consulted: the file is gone, the record still answers.
    unlinkSync(join(dir, 'pub60/m.txt'));
    clock += 59_000;
    assert.equal((await fetch('/c60/m.txt')).body.toString(), 'memory');
    assert.equal((await fetch('/c60/m.txt', 'HEAD')).status, 200);
    clock += 2_000; // 61 s after the record was made: lstat again, which finds nothing
    const expired = await fetch('/c60/m.txt');
    assert.equal(expired.status, 404);
    assert.equal(stats('/c60/').revalidations, s2.revalidations + 1);
  });

  test('cache_ttl>0: a large (body-less) record reopens and compares the file, so a symlink swap serves nothing from outside', async () => {
    const first = await fetch('/c60/big/large.bin');
    assert.equal(first.status, 200);
    assert.equal(first.body.length, 100 * 1024);
    assert.ok(first.body.every((b) => b === 0x62));
    const s1 = stats('/c60/');
    assert.equal((await fetch('/c60/big/large.bin')).body.length, 100 * 1024);
    assert.equal(stats('/c60/').lookups, s1.lookups, 'served from the record (reopened by its real path)');
    renameSync(join(dir, 'pub60/big'), join(dir, 'pub60/big-old'));
    symlinkSync('../outside60', join(dir, 'pub60/big'));
    const r = await raw('/c60/big/large.bin', 'GET', '', cport);
    assert.equal(r.status, 404);
    assert.ok(!r.all.includes(SECRET), 'secret bytes leaked');
  });

  test('the bytes of a file written moments ago are not kept until its timestamps have settled', async () => {
    writeFileSync(join(dir, 'pubR/new.txt'), 'fresh bytes');
    freshClock = Date.now();
    assert.equal((await fetch('/r/new.txt')).body.toString(), 'fresh bytes');
    const s1 = stats('/r/');
    assert.equal(s1.entries, 1, 'the record is kept');
    assert.equal((await fetch('/r/new.txt')).body.toString(), 'fresh bytes');
    assert.equal(stats('/r/').bytes, s1.bytes, 'but not its body: a same-tick rewrite would not move mtime');
    freshClock += 3_000;
    assert.equal((await fetch('/r/new.txt')).body.toString(), 'fresh bytes');
    assert.equal(stats('/r/').bytes, s1.bytes + 'fresh bytes'.length, 'read again once settled, and kept');
    assert.equal(stats('/r/').lookups, s1.lookups);
  });

  test('eviction: at most maxEntries records, least recently used out first', async () => {
    const lookups = (): number => stats('/e3/').lookups;
    for (const n of [1, 2, 3]) assert.equal((await fetch(`/e3/e${n}.txt`)).status, 200);
    assert.equal(stats('/e3/').entries, 3);
    const l0 = lookups();
    await fetch('/e3/e1.txt'); // e1 is now the most recently used; e2 the least
    assert.equal(lookups(), l0);
    await fetch('/e3/e4.txt');
    assert.equal(stats('/e3/').entries, 3);
    assert.equal(stats('/e3/').evictions, 1);
    await fetch('/e3/e1.txt');
    assert.equal(lookups(), l0 + 1, 'e1 survived');
    const e2 = await fetch('/e3/e2.txt');
    assert.ok(e2.body.equals(Buffer.alloc(1000, 0x32)));
    assert.equal(lookups(), l0 + 2, 'e2 was evicted');
  });

  test('eviction: the bytes held never exceed maxBytes; a file larger than that is still served whole', async () => {
    for (let n = 1; n <= 6; n++) {
      const r = await fetch(`/eb/e${n}.txt`);
      assert.ok(r.body.equals(Buffer.alloc(1000, 0x30 + n)), `e${n}`);
      assert.ok(stats('/eb/').bytes <= 3000, `bytes ${stats('/eb/').bytes} after e${n}`);
    }
    assert.ok(stats('/eb/').entries < 6);
    assert.ok(stats('/eb/').evictions > 0);
    for (let i = 0; i < 2; i++) {
      const big = await fetch('/eb/five-k.txt');
      assert.ok(big.body.equals(Buffer.alloc(5000, 0x35)));
      assert.ok(stats('/eb/').bytes <= 3000);
    }
  });
});
