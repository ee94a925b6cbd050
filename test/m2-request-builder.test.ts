// buildHeaders against the Mongrel2 captures: each fixture's client bytes go through a real
// node:http server, and the message we encode must carry the captured keys and values
// (byte for byte where Mongrel2's key order is deterministic).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import fc from 'fast-check';
import { buildHeaders, rawHeaderValue, MAX_HEADER_VALUES, type BuiltRequest } from '../gateway/m2-request-builder.js';
import { encodeRequest, parseRequest, type HeaderMap } from '../protocol/m2-request.js';
import { fixture, fixtureIndex } from './helpers/fixtures.js';

interface Seen {
  json: BuiltRequest;
  tnet: BuiltRequest;
  body: Buffer;
}

let pattern = '/handler';
let scheme: 'http' | 'https' = 'http';
let waiting: ((seen: Seen) => void) | undefined;

const server = createServer({ requireHostHeader: false }, (req: IncomingMessage, res) => {
  const ctx = { pattern, scheme, remoteAddr: req.socket.remoteAddress ?? '' };
  const json = buildHeaders(req, { ...ctx, encoding: 'json' });
  const tnet = buildHeaders(req, { ...ctx, encoding: 'tnetstring' });
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    waiting?.({ json, tnet, body: Buffer.concat(chunks) });
    waiting = undefined;
    res.writeHead(200, { connection: 'close', 'content-length': '0' }).end();
  });
});
server.maxHeadersCount = 0;
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const port = (server.address() as AddressInfo).port;
after(() => server.close());

/** Sends raw bytes in one write and returns what buildHeaders made of them. */
async function through(bytes: Buffer | string): Promise<Seen> {
  const seen = new Promise<Seen>((resolve) => (waiting = resolve));
  const socket = connect(port, '127.0.0.1');
  socket.on('data', () => {});
  socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  const [result] = await Promise.all([seen, once(socket, 'close')]);
  return result;
}

function sortedKeys(h: HeaderMap): string[] {
  return Object.keys(h).sort();
}

// Keys produced by other parts of the gateway (uploads §3.4, flow control §3.7).
const NOT_OURS = new Set(['DOWNLOAD_CREDITS', 'x-mongrel2-upload-start', 'x-mongrel2-upload-done']);
const isMongrel2Key = (k: string): boolean => k === 'x-forwarded-for' || k === k.toUpperCase();

const cases = fixtureIndex().filter((e) => ['request', 'upload-start', 'upload-done'].includes(e.kind) && e.file.startsWith('req-') && e.file !== 'req-jsonsocket.json.bin');

test('the fixture list covers both encodings of every HTTP capture', () => {
  assert.equal(cases.length, 20);
});

for (const entry of cases) {
  const clientFile = (entry as unknown as { client_request: string }).client_request;
  test(`${clientFile} → ${entry.file}`, async () => {
    const expected = parseRequest(fixture(entry.file));
    pattern = expected.headers.PATTERN as string;
    const seen = await through(fixture(clientFile));
    const built = expected.encoding === 'json' ? seen.json : seen.tnet;
    const body = entry.kind === 'request' ? seen.body : Buffer.alloc(0);
    const ours = parseRequest(encodeRequest({ sender: expected.sender, connId: expected.connId, path: built.path, headers: built.headers, body }, expected.encoding));
    assert.equal(ours.path, expected.path);
    assert.equal(built.path, expected.path);
    assert.ok(ours.body.equals(expected.body));

    const want: HeaderMap = { ...expected.headers };
    for (const k of NOT_OURS) delete want[k];
    // llhttp strips trailing blanks before rawHeaders is filled (documented difference).
    if (want['x-space'] === 'lead and trail   ') {
      assert.equal(ours.headers['x-space'], 'lead and trail');
      want['x-space'] = 'lead and trail';
    }
    assert.deepEqual(sortedKeys(ours.headers), sortedKeys(want));
    for (const k of Object.keys(want)) assert.deepEqual(ours.headers[k], want[k], `header ${k}`);
    // Mongrel2's own keys and x-forwarded-for sit where the capture has them.
    assert.deepEqual(Object.keys(ours.headers).filter(isMongrel2Key), Object.keys(want).filter(isMongrel2Key));
  });
}

test('a request whose only client header is Host encodes to the captured bytes', async () => {
  pattern = '/handler';
  const seen = await through(fixture('client-req-before-disconnect.http.bin'));
  for (const [file, built, enc] of [['req-before-disconnect.json.bin', seen.json, 'json'], ['req-before-disconnect.tnet.bin', seen.tnet, 'tnetstring']] as const) {
    const raw = fixture(file);
    const { sender, connId } = parseRequest(raw);
    const ours = encodeRequest({ sender, connId, path: built.path, headers: built.headers }, enc);
    assert.equal(ours.toString('latin1'), raw.toString('latin1'));
  }
});

test('client headers keep arrival order; a repeated name sits where it first appeared', async () => {
  const seen = await through(fixture('client-req-dup-headers.http.bin'));
  const client = (h: HeaderMap): string[] => Object.keys(h).filter((k) => !isMongrel2Key(k));
  assert.deepEqual(client(seen.json.headers), ['host', 'x-dup', 'cookie', 'x-many']);
  assert.deepEqual(client(seen.tnet.headers), ['host', 'x-dup', 'cookie', 'x-many']);
  assert.deepEqual(seen.json.headers['x-many'], ['0', '1', '2', '3', '4']);
  assert.equal(MAX_HEADER_VALUES, 5);
});

test('PATH, URI, QUERY and FRAGMENT split the target as Mongrel2 does', async () => {
  const expectations: Array<[string, { PATH: string; URI: string; QUERY?: string; FRAGMENT?: string }]> = [
    ['/handler/a', { PATH: '/handler/a', URI: '/handler/a' }],
    ['/handler/x?', { PATH: '/handler/x', URI: '/handler/x?', QUERY: '' }],
    ['/handler/x?a?b', { PATH: '/handler/x', URI: '/handler/x?a?b', QUERY: 'a?b' }],
    ['/handler/a#frag', { PATH: '/handler/a', URI: '/handler/a', FRAGMENT: 'frag' }],
    ['/handler/a?x=1#f?g', { PATH: '/handler/a', URI: '/handler/a?x=1', QUERY: 'x=1', FRAGMENT: 'f?g' }],
    ['/handler/a#f?g', { PATH: '/handler/a', URI: '/handler/a', FRAGMENT: 'f?g' }],
    ['/handler/../%7Efoo%2Fbar', { PATH: '/handler/../%7Efoo%2Fbar', URI: '/handler/../%7Efoo%2Fbar' }],
  ];
  for (const [target, want] of expectations) {
    const seen = await through(`GET ${target} HTTP/1.1\r\n\r\n`);
    for (const h of [seen.json.headers, seen.tnet.headers]) {
      assert.equal(h.PATH, want.PATH, target);
      assert.equal(h.URI, want.URI, target);
      assert.equal(h.QUERY, want.QUERY, target);
      assert.equal(h.FRAGMENT, want.FRAGMENT, target);
      assert.equal('QUERY' in h, want.QUERY !== undefined, target);
      assert.equal('FRAGMENT' in h, want.FRAGMENT !== undefined, target);
    }
    assert.equal(seen.json.path, want.PATH);
  }
});

test('key order with QUERY and FRAGMENT follows the measured order of each encoding', async () => {
  pattern = '/handler';
  const seen = await through('GET /handler/a?q=1#frag HTTP/1.0\r\nHost: localhost\r\n\r\n');
  assert.deepEqual(Object.keys(seen.json.headers), ['PATH', 'x-forwarded-for', 'host', 'METHOD', 'VERSION', 'URI', 'QUERY', 'FRAGMENT', 'PATTERN', 'URL_SCHEME', 'REMOTE_ADDR']);
  assert.deepEqual(Object.keys(seen.tnet.headers), ['REMOTE_ADDR', 'METHOD', 'URL_SCHEME', 'PATTERN', 'FRAGMENT', 'QUERY', 'URI', 'VERSION', 'PATH', 'host', 'x-forwarded-for']);
  assert.equal(seen.json.headers.VERSION, 'HTTP/1.0');
});

test('x-forwarded-for is replaced by the peer address, forbidden names are dropped', async () => {
  const seen = await through('GET /h HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n__proto__: x\r\nx-forwarded-for: 5.6.7.8\r\nConstructor: y\r\nX-Ok: 1\r\n\r\n');
  for (const h of [seen.json.headers, seen.tnet.headers]) {
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h.REMOTE_ADDR, '127.0.0.1');
    assert.equal(Object.hasOwn(h, '__proto__'), false);
    assert.equal(Object.hasOwn(h, 'constructor'), false);
    assert.equal(Object.getPrototypeOf(h), Object.prototype);
    assert.equal(h['x-ok'], '1');
  }
  // The codec accepts the result (it rejects __proto__/constructor keys).
  parseRequest(encodeRequest({ sender: 's', connId: 1, path: seen.json.path, headers: seen.json.headers }, 'json'));
});

test('mixed-case repeats merge into one list of at most 5 values', async () => {
  const lines = ['X-A: 1', 'x-a: 2', 'X-a: 3', 'X-B: solo', 'x-A: 4', 'X-A: 5', 'x-a: 6', 'X-A: 7'];
  const seen = await through(`GET /h HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
  assert.deepEqual(seen.tnet.headers['x-a'], ['1', '2', '3', '4', '5']);
  assert.equal(seen.tnet.headers['x-b'], 'solo');
  assert.deepEqual(
    Object.keys(seen.tnet.headers).filter((k) => k.startsWith('x-') && k !== 'x-forwarded-for'),
    ['x-a', 'x-b'],
  );
});

test('URL_SCHEME and PATTERN come from the context', async () => {
  pattern = '/users/([0-9]+)$';
  scheme = 'https';
  try {
    const seen = await through('GET /users/42 HTTP/1.1\r\n\r\n');
    assert.equal(seen.json.headers.URL_SCHEME, 'https');
    assert.equal(seen.tnet.headers.PATTERN, '/users/([0-9]+)$');
  } finally {
    pattern = '/handler';
    scheme = 'http';
  }
});

test('UTF-8 values round-trip to the client bytes; invalid UTF-8 becomes U+FFFD', async () => {
  const seen = await through(Buffer.concat([Buffer.from('GET /h HTTP/1.1\r\nX-Name: '), Buffer.from('José 日本'), Buffer.from('\r\nX-Bad: \xff\xfeok\r\n\r\n', 'latin1')]));
  assert.equal(seen.json.headers['x-name'], 'José 日本');
  assert.equal(seen.json.headers['x-bad'], '\ufffd\ufffdok');
  // What a handler decoding Mongrel2's raw bytes as UTF-8 would see:
  assert.equal(seen.json.headers['x-bad'], Buffer.from([0xff, 0xfe, 0x6f, 0x6b]).toString('utf8'));
});

test('node strips trailing blanks of values (the difference we cannot avoid)', async () => {
  const seen = await through('GET /h HTTP/1.1\r\nX-Space:   lead and trail   \r\nX-Tab:\tv\t\r\nX-Empty:\r\n\r\n');
  assert.equal(seen.json.headers['x-space'], 'lead and trail');
  assert.equal(seen.json.headers['x-tab'], 'v');
  assert.equal(seen.json.headers['x-empty'], '');
});

test('rawHeaderValue restores the bytes of any valid UTF-8 and decodes anything else as UTF-8 would', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (text) => {
      const bytes = Buffer.from(text, 'utf8');
      assert.ok(Buffer.from(rawHeaderValue(bytes.toString('latin1')), 'utf8').equals(bytes));
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (arr) => {
      const bytes = Buffer.from(arr);
      assert.equal(rawHeaderValue(bytes.toString('latin1')), bytes.toString('utf8'));
    }),
  );
  const ascii = 'plain ascii';
  assert.equal(rawHeaderValue(ascii), ascii);
});
