// checkRequest behind a real node:http server fed byte-exact requests over raw TCP: which bad
// requests llhttp already answers itself ('clientError'), which reach checkRequest and get
// which status, and that good requests pass.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, IncomingMessage, type Server } from 'node:http';
import { connect, Socket, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { checkRequest, HYGIENE_DEFAULTS, type HygieneLimits } from '../gateway/request-hygiene.js';
import { M2gateError } from '../protocol/errors.js';
import { fixture } from './helpers/fixtures.js';

interface Outcome {
  /** Status line code the client read. */
  status: number;
  /** checkRequest's verdict, or 'node' when llhttp refused the request itself. */
  by: 'node' | 'hygiene' | 'accepted';
  /** llhttp's error code when by === 'node'. */
  code?: string;
  /** req.rawHeaders.length / 2 when the request reached us. */
  lines?: number;
}

let limits: Partial<HygieneLimits> | undefined;

interface Rig {
  server: Server;
  port: number;
  last: { by: Outcome['by']; code?: string; lines?: number } | undefined;
}

async function rig(options: { insecureHTTPParser?: boolean; nodeDefaultMaxHeadersCount?: boolean }): Promise<Rig> {
  const r: Rig = { server: undefined as unknown as Server, port: 0, last: undefined };
  // As the gateway will: Mongrel2 accepts requests without Host (§3.2).
  const server = createServer({ requireHostHeader: false, insecureHTTPParser: options.insecureHTTPParser ?? false }, (req, res) => {
    const verdict = checkRequest(req, limits);
    r.last = { by: verdict ? 'hygiene' : 'accepted', lines: req.rawHeaders.length / 2 };
    if (verdict) {
      res.writeHead(verdict.status, { connection: 'close', 'content-length': '0' }).end();
      return;
    }
    req.resume();
    req.on('end', () => res.writeHead(200, { connection: 'close', 'content-length': '0' }).end());
  });
  // The gateway lifts node's cap so that checkRequest sees every line (HygieneLimits doc).
  if (options.nodeDefaultMaxHeadersCount !== true) server.maxHeadersCount = 0;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    r.last = { by: 'node', code: err.code };
    // What node writes itself when nobody listens.
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    else socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  r.server = server;
  r.port = (server.address() as AddressInfo).port;
  after(() => server.close());
  return r;
}

const strict = await rig({});
const insecure = await rig({ insecureHTTPParser: true });
const truncating = await rig({ nodeDefaultMaxHeadersCount: true });

async function send(r: Rig, bytes: string | Buffer): Promise<Outcome> {
  r.last = undefined;
  const socket = connect(r.port, '127.0.0.1');
  let response = '';
  socket.on('data', (d: Buffer) => (response += d.toString('latin1')));
  socket.on('error', () => {});
  socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  await once(socket, 'close');
  const status = Number(response.slice(9, 12));
  // Set by the server's callbacks while we awaited (TS keeps the narrowing to undefined).
  const last = r.last as Rig['last'];
  assert.ok(last, `no verdict for ${JSON.stringify(bytes.toString().slice(0, 60))}`);
  return { status, ...last };
}

const GET = (target: string, extra = ''): string => `GET ${target} HTTP/1.1\r\n${extra}\r\n`;
const POST = (head: string, body: string, version = '1.1'): string => `POST /h HTTP/${version}\r\n${head}\r\n${body}`;

const HYGIENE_CASES: Array<[string, string, number]> = [
  ['method with a hyphen (llhttp knows M-SEARCH)', 'M-SEARCH /h HTTP/1.1\r\n\r\n', 400],
  ['HTTP/0.9', 'GET /h HTTP/0.9\r\n\r\n', 400],
  ['HTTP/2.0', 'GET /h HTTP/2.0\r\n\r\n', 400],
  ['asterisk-form', GET('*'), 400],
  ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\n\r\n', 400],
  ['absolute-form', GET('http://localhost/h'), 400],
  ['fragment', GET('/h#frag'), 400],
  ['bad percent-escape', GET('/h/%zz'), 400],
  ['truncated percent-escape', GET('/h/%4'), 400],
  ['two Host headers', GET('/h', 'Host: a\r\nHost: b\r\n'), 400],
  ['two Host headers, different case', GET('/h', 'host: a\r\nHOST: a\r\n'), 400],
  ['Transfer-Encoding on HTTP/1.0', POST('Transfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n', '1.0'), 400],
  ['unknown coding before chunked', POST('Transfer-Encoding: gzip, chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'), 501],
  ['unknown coding on its own line', POST('Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'), 501],
  ['1281 header lines', GET('/h', 'a:\r\n'.repeat(1281)), 431],
];
for (const ch of '"<>{}^|\\`[]') HYGIENE_CASES.push([`raw ${ch} in the target`, GET(`/h/a${ch}b`), 400]);

for (const [name, bytes, status] of HYGIENE_CASES) {
  test(`reaches checkRequest and is refused with ${status}: ${name}`, async () => {
    const got = await send(strict, bytes);
    assert.equal(got.by, 'hygiene');
    assert.equal(got.status, status);
  });
}

// llhttp (strict, as configured) answers these itself; checkRequest never sees them.
const NODE_CASES: Array<[string, string, string]> = [
  ['lower-case method', 'get /h HTTP/1.1\r\n\r\n', 'HPE_INVALID_METHOD'],
  ['method unknown to llhttp (Mongrel2 accepts PURGE2)', 'PURGE2 /h HTTP/1.1\r\n\r\n', 'HPE_INVALID_METHOD'],
  ['raw space in the target', GET('/a b'), 'HPE_INVALID_CONSTANT'],
  ['raw UTF-8 in the target', GET('/caf\xc3\xa9'), 'HPE_INVALID_URL'],
  ['raw tab in the target', GET('/a\tb'), 'HPE_INVALID_URL'],
  ['HTTP/1.2', 'GET /h HTTP/1.2\r\n\r\n', 'HPE_INVALID_VERSION'],
  ['bare LF line endings (Mongrel2 accepts them)', 'GET /h HTTP/1.1\nHost: a\n\n', 'HPE_INVALID_VERSION'],
  ['obs-fold', GET('/h', 'X-F: a\r\n b\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
  ['NUL in a value', GET('/h', 'X-N: a\x00b\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
  ['DEL in a value', GET('/h', 'X-N: a\x7fb\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
  ['0x01 in a value (Mongrel2 passes it)', GET('/h', 'X-N: a\x01b\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
  ['bare CR in a value', GET('/h', 'X-N: a\rb\r\n'), 'HPE_LF_EXPECTED'],
  ['space before the colon', GET('/h', 'X : y\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
  ['two equal Content-Lengths', POST('Content-Length: 3\r\nContent-Length: 3\r\n', 'abc'), 'HPE_UNEXPECTED_CONTENT_LENGTH'],
  ['Content-Length and chunked', POST('Content-Length: 3\r\nTransfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'), 'HPE_INVALID_TRANSFER_ENCODING'],
  ['Transfer-Encoding: identity', POST('Transfer-Encoding: identity\r\n', ''), 'HPE_INVALID_TRANSFER_ENCODING'],
  ['chunked, identity', POST('Transfer-Encoding: chunked, identity\r\n', ''), 'HPE_INVALID_TRANSFER_ENCODING'],
  ['chunked twice', POST('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'), 'HPE_INVALID_TRANSFER_ENCODING'],
  ['negative Content-Length', POST('Content-Length: -1\r\n', ''), 'HPE_INVALID_CONTENT_LENGTH'],
];
for (const [name, bytes, code] of NODE_CASES) {
  test(`llhttp refuses it before checkRequest: ${name}`, async () => {
    const got = await send(strict, bytes);
    assert.equal(got.by, 'node');
    assert.equal(got.code, code);
    assert.equal(got.status, 400);
  });
}

test('with insecureHTTPParser, smuggling shapes do reach checkRequest and are refused', async () => {
  const cases: Array<[string, number]> = [
    [POST('Content-Length: 3\r\nTransfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'), 400],
    [POST('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'), 400],
    [POST('Transfer-Encoding: identity\r\n', ''), 400],
    [POST('Transfer-Encoding: chunked, identity\r\n', ''), 400],
  ];
  for (const [bytes, status] of cases) {
    const got = await send(insecure, bytes);
    assert.equal(got.by, 'hygiene', bytes);
    assert.equal(got.status, status, bytes);
  }
});

const ACCEPTED: Array<[string, string | Buffer]> = [
  ['GET with a query', GET('/handler/items?id=7&name=caf%C3%A9', 'Host: localhost\r\n')],
  ["RFC 3986 punctuation ~ ' ! $ @ : ; * , ( ) + = &", GET("/h/~'!$@:;*,()+=&?a=/?b")],
  ['a method of upper-case letters llhttp knows', 'PURGE /h HTTP/1.1\r\n\r\n'],
  ['HTTP/1.0 without Host', 'GET /h HTTP/1.0\r\n\r\n'],
  ['HTTP/1.1 without Host', GET('/h')],
  ['chunked body', POST('Transfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n')],
  ['chunked in capitals (RFC 9112 §7: case-insensitive)', POST('Transfer-Encoding: CHUNKED\r\n', '3\r\nabc\r\n0\r\n\r\n')],
  ['1280 header lines', GET('/h', 'a:\r\n'.repeat(1280))],
  ['repeated non-framing headers', GET('/h', 'X-Dup: 1\r\nx-dup: 2\r\nCookie: a\r\nCookie: b\r\n')],
];
for (const file of ['before-disconnect', 'dup-headers', 'get-query', 'post-binary', 'post-form', 'upload', 'utf8-headers']) {
  ACCEPTED.push([`fixture client-req-${file}.http.bin`, fixture(`client-req-${file}.http.bin`)]);
}
for (const [name, bytes] of ACCEPTED) {
  test(`accepted: ${name}`, async () => {
    const got = await send(strict, bytes);
    assert.equal(got.by, 'accepted');
    assert.equal(got.status, 200);
  });
}

test('maxHeaders is an option; the count is of lines, not names', async () => {
  limits = { maxHeaders: 3 };
  try {
    assert.equal((await send(strict, GET('/h', 'a: 1\r\nA: 2\r\na: 3\r\n'))).by, 'accepted');
    const over = await send(strict, GET('/h', 'a: 1\r\nA: 2\r\na: 3\r\na: 4\r\n'));
    assert.equal(over.by, 'hygiene');
    assert.equal(over.status, 431);
  } finally {
    limits = undefined;
  }
  assert.equal(HYGIENE_DEFAULTS.maxHeaders, 1280);
});

test("node's default maxHeadersCount hides extra lines, so the gateway must set it to 0", async () => {
  const got = await send(truncating, GET('/h', 'a:\r\n'.repeat(1300)));
  assert.equal(got.by, 'accepted');
  assert.ok(got.lines! < 1281, `node kept ${got.lines} lines`);
});

// Rules llhttp already enforces, checked on a hand-made request (a lenient parser, or a
// future llhttp, could let them through).
function fake(fields: { method?: string; url?: string; version?: string; raw?: string[] }): IncomingMessage {
  const req = new IncomingMessage(new Socket());
  req.method = fields.method ?? 'POST';
  req.url = fields.url ?? '/h';
  req.httpVersion = fields.version ?? '1.1';
  req.rawHeaders = fields.raw ?? [];
  return req;
}

test('checkRequest refuses what llhttp refuses, without relying on it', () => {
  const refused: Array<[Parameters<typeof fake>[0], number]> = [
    [{ raw: ['Content-Length', '3', 'content-length', '3'] }, 400],
    [{ raw: ['Content-Length', '3', 'Transfer-Encoding', 'chunked'] }, 400],
    [{ raw: ['Transfer-Encoding', 'chunked', 'Content-Length', '3'] }, 400],
    [{ raw: ['Content-Length', '-1'] }, 400],
    [{ raw: ['Content-Length', ''] }, 400],
    [{ raw: ['Content-Length', '3, 3'] }, 400],
    [{ raw: ['Transfer-Encoding', 'identity'] }, 400],
    [{ raw: ['Transfer-Encoding', 'chunked, identity'] }, 400],
    [{ raw: ['Transfer-Encoding', 'chunked, chunked'] }, 400],
    [{ raw: ['Transfer-Encoding', 'chunked;x=1'] }, 400],
    [{ raw: ['Transfer-Encoding', ''] }, 400],
    [{ method: 'get' }, 400],
    [{ method: '' }, 400],
    [{ method: 'A'.repeat(21) }, 400],
    [{ url: '' }, 400],
    [{ url: 'localhost:80' }, 400],
    [{ url: '/caf\xc3\xa9' }, 400],
    [{ url: '/a b' }, 400],
    [{ url: '/a%' }, 400],
    [{ version: '1.2' }, 400],
  ];
  for (const [fields, status] of refused) {
    assert.equal(checkRequest(fake(fields))?.status, status, JSON.stringify(fields));
  }
  const accepted: Array<Parameters<typeof fake>[0]> = [
    { method: 'PURGE2' },
    { method: 'A'.repeat(20) },
    { raw: ['Transfer-Encoding', ' , chunked'] },
    { raw: ['Content-Length', '0'] },
    { url: '/%41%2f%aF' },
  ];
  for (const fields of accepted) assert.equal(checkRequest(fake(fields)), undefined, JSON.stringify(fields));
});

test('a bad maxHeaders option throws a config error', () => {
  for (const maxHeaders of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => checkRequest(fake({}), { maxHeaders }), (err: unknown) => err instanceof M2gateError && err.code === 'M2G_ERR_CONFIG');
  }
});
